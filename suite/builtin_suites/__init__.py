"""The built-in suites: one TOML file each, named after the suite, registered on first lookup."""

from importlib.resources import files

from ..suite_file import parse_suite
from ..suites import suites

for _file in sorted(files(__name__).iterdir(), key=lambda f: f.name):
    if _file.name.endswith(".toml"):
        _suite = parse_suite(_file.read_text(encoding="utf-8"), f"sparsebench/builtin_suites/{_file.name}")
        suites.register(_suite.name, _suite)

"""Packaging: every Python package folder is installed under `modeling_m2f_video`, and the console script runs."""

import configparser
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_setup_cfg() -> tuple[set[str], dict[str, Path]]:
    """The declared package names, and the folder each `package_dir` entry maps to its package."""
    options = configparser.ConfigParser()
    options.read(ROOT / "setup.cfg")
    packages = set(options["options"]["packages"].split())
    roots = {}
    for line in options["options"]["package_dir"].strip().splitlines():
        name, folder = (part.strip() for part in line.split("="))
        roots[name] = ROOT / folder
    return packages, roots


def test_every_package_folder_is_installed_under_the_package_name():
    packages, roots = read_setup_cfg()
    assert all(name.split(".")[0] == "modeling_m2f_video" for name in packages | set(roots))
    for root_name, root_folder in roots.items():
        for init_file in root_folder.rglob("__init__.py"):
            relative = init_file.parent.relative_to(root_folder).parts
            name = ".".join((root_name, *relative))
            assert name in packages, f"{init_file.parent} is not installed: add {name} to setup.cfg"


def test_console_script_lists_subcommands():
    result = subprocess.run(["m2f-video", "--help"], capture_output=True, text=True, check=True, cwd=ROOT.parent)
    assert "usage: m2f-video" in result.stdout

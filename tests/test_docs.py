"""Every ``python -m zoo.<cmd> ...`` command shown in README.md and docs/*.md still parses.

Commands are taken from fenced code blocks (with ``\\`` continuations joined) and from inline
code spans that hold a whole command. Each is dry-run without training or reading data:

- Hydra entry points (a module whose source has ``@hydra.main(..., config_name="<name>")``:
  zoo.train, zoo.eval, zoo.sample, zoo.view, zoo.benchmark, zoo.process) are composed with the
  command's overrides through Hydra's compose API, so a misspelled key, an unknown config group
  option or a malformed override fails. ``-m`` sweeps are expanded value by value.
- argparse entry points (zoo.pretrained, zoo.data.multiscale) cannot be dry-run without doing
  their work: they are called with ``--help`` (after the subcommand, if any), and every
  ``--option`` the command uses must appear in that help.

Placeholders cannot be dry-run as written: ``<path>``-style values are replaced by a dummy
string, ``$VAR`` shell variables by their name; a config group chosen by a placeholder
(``model=<m>``) is left at its default, since no dummy names a real option. Commands that are
not ``python -m zoo.*`` (``python -c ...``, ``pip``, ``torchrun`` itself) are not checked.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import itertools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from zoo.cli_utils import CONF_DIR

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLACEHOLDER = "DOCS_PLACEHOLDER"
GROUPS = {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()}

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`(python3? -m zoo\.[^`]*)`")
_COMMAND = re.compile(r"(?:^|\s)-m (zoo(?:\.\w+)+)(.*)$")
_HYDRA_MAIN = re.compile(r"@hydra\.main\([^)]*config_name=\"(\w+)\"")


def _commands(path: Path) -> list[tuple[str, str, str]]:
    """(where, module, argument string) of every zoo command in the page."""
    text = path.read_text()
    found = []
    for block in _FENCE.finditer(text):
        start = text[: block.start()].count("\n") + 2  # the block's first line
        lines = block.group(1).split("\n")
        i = 0
        while i < len(lines):
            line, first = lines[i], i
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            match = _COMMAND.search(line)
            if match:
                found.append((f"{path.name}:{start + first}", match.group(1), match.group(2)))
    for span in _INLINE.finditer(text):
        match = _COMMAND.search(span.group(1))
        line = text[: span.start()].count("\n") + 1
        found.append((f"{path.name}:{line}", match.group(1), match.group(2)))
    return found


COMMANDS = [c for page in PAGES for c in _commands(page)]


def _arguments(args: str) -> list[str]:
    """The command's arguments, placeholders and shell variables made concrete."""
    args = re.sub(r"<[^<>]*>", PLACEHOLDER, args)
    args = re.sub(r"\$\{?(\w+)\}?", r"\1", args)
    return shlex.split(args, comments=True)


def _config_name(module: str) -> str | None:
    """The Hydra config a module's entry point composes, None for a non-Hydra entry point."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    origin = Path(spec.origin)
    if origin.name == "__init__.py":  # a package run with -m: its __main__
        origin = origin.with_name("__main__.py")
    match = _HYDRA_MAIN.search(origin.read_text())
    return match.group(1) if match else None


def dry_run(module: str, args: str) -> None:
    """Raise if the command would be refused before doing any work (see the module doc)."""
    argv = _arguments(args)
    name = _config_name(module)
    if name is None:
        _argparse_help(module, argv)
        return
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for raw, override in zip(overrides, parsed, strict=True):
        value = override.value()
        is_group = override.key_or_group in GROUPS
        if is_group and PLACEHOLDER in str(value):
            continue  # a group chosen by a placeholder: keep the default
        if override.is_sweep_override():
            key = raw.split("=", 1)[0]
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([raw])
    for combination in itertools.product(*choices):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            compose(config_name=name, overrides=list(combination))


def cli_main(module: str):
    """The ``main`` that ``python -m <module>`` runs (a package's ``__main__`` module's)."""
    mod = importlib.import_module(module)
    if hasattr(mod, "__path__"):  # a package: python -m runs its __main__
        mod = importlib.import_module(f"{module}.__main__")
    return mod.main


def _argparse_help(module: str, argv: list[str]) -> None:
    main = cli_main(module)
    sub = [argv[0]] if argv and not argv[0].startswith("-") else []
    if sub and argv[0] != PLACEHOLDER and not _is_subcommand(main, argv[0]):
        sub = []  # a positional argument, not a subcommand
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main([*sub, "--help"])
    assert exit_.value.code == 0, f"{module} {' '.join(sub)} --help exited {exit_.value.code}"
    for option in (a.split("=", 1)[0] for a in argv if a.startswith("--")):
        listed = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", out.getvalue())
        assert listed, f"{module} {' '.join(sub)} has no option {option}"


def _is_subcommand(main, word: str) -> bool:
    """Whether ``word`` is one of ``main``'s subcommands (its help lists them as {a,b})."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["--help"])
    choices = re.search(r"\{([\w,-]+)\}", out.getvalue())
    return bool(choices) and word in choices.group(1).split(",")


@pytest.mark.parametrize(("where", "module", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_dry_runs(where, module, args):
    dry_run(module, args)


def test_the_pages_show_every_entry_point():
    modules = {module for _, module, _ in COMMANDS}
    hydra = {"zoo.train", "zoo.eval", "zoo.sample", "zoo.view", "zoo.benchmark", "zoo.process"}
    assert hydra | {"zoo.pretrained", "zoo.data.multiscale"} <= modules, modules
    assert {_config_name(m) for m in hydra} == {m.split(".")[1] for m in hydra}
    readme = [c for c in COMMANDS if c[0].startswith("README.md:")]
    assert len(readme) >= 10, readme


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    headings = re.findall(r"^#+ (.*)$", _FENCE.sub("", page.read_text()), re.M)
    slugs = ("".join(c for c in h.lower() if c.isalnum() or c in " -_") for h in headings)
    return {s.replace(" ", "-") for s in slugs}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_and_anchors_resolve(page):
    """Every relative link (text or image) names a file of the repository and, for a page, one
    of its headings."""
    text = _FENCE.sub("", page.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"\w+://", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.exists(), f"{page.name}: link to a missing file {target}"
        if anchor:
            assert anchor in _anchors(path), f"{page.name}: no heading for {target}"


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("zoo.train", "model=nerff"),  # unknown group option
        ("zoo.train", "model=nerf trainer.max_stepz=20"),  # misspelled key
        ("zoo.train", "-m model=nerf,nerff"),  # a bad value inside a sweep
        ("zoo.sample", "ckpt=<path> nn=8"),  # misspelled key after a placeholder
        ("zoo.benchmark", "'models=[deepsdf,nerf]' eval.max_shape=8"),
        ("zoo.pretrained", "export --ckpt <last.ckpt> --nam <name>"),  # unknown option
    ],
)
def test_a_broken_command_fails_the_dry_run(module, args):
    with pytest.raises((Exception, SystemExit)):  # noqa: B017  (Hydra's or our assertion)
        dry_run(module, args)

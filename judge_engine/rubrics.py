"""Rubrics: what each benchmark tests, how to grade it, and which evidence counts.

In: a folder of TOML files, one per benchmark family (`swebench.toml`...) plus
`default.toml`; optionally the user's own folder, whose files add to or replace the
built-in ones by name. Out: a `RubricSet` that picks a `Rubric` for a session's
benchmark by name or alias.

A rubric's version is a hash of its file's bytes and of the reply form it asks for
(its failure modes, the default taxonomy's included, and its criteria:
`taxonomy.Form`). It travels with every request and is part of every journal key, so
editing one rubric re-grades only its sessions, and a change of the taxonomy re-grades
what it changes.

Beyond the text fields, a rubric may hold `[failure_modes]` (codes added to or
redefining the default taxonomy, each with its one-line definition) and `[[criteria]]`
(each `name`, `kind` "pass_fail" or "scale_1_5", and `definition`): more criteria the
judge answers in the same reply, each its own score column.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .files import UnsafePath, read_small
from .taxonomy import CRITERION_KINDS, NONE, Criterion, Form, form_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

DEFAULT = "default"
_FIELDS = (
    "title", "aliases", "tests", "rule", "evidence", "reliability", "failure_modes", "criteria",
)  # fmt: skip
#: A failure mode's or a criterion's name: what a score column may be called.
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TEXT_FIELDS = ("title", "tests", "rule", "evidence", "reliability")


#: The reply form of a rubric that adds nothing to the default taxonomy.
DEFAULT_FORM = form_of()


class RubricError(Exception):
    """A rubric file that cannot be used."""


@dataclass(frozen=True, slots=True)
class Rubric:
    name: str
    title: str
    aliases: tuple[str, ...]
    #: What the benchmark tests.
    tests: str
    #: The grading rule: when a session counts as a success.
    rule: str
    #: Which evidence in a trace counts.
    evidence: str
    #: How reliable a verdict from the trace alone is for this benchmark.
    reliability: str
    #: sha256 of the file's bytes and its reply form, first 12 hex digits.
    version: str
    path: str
    #: The reply's failure modes and criteria (`taxonomy.Form`).
    form: Form = DEFAULT_FORM


def normalize(name: str) -> str:
    """Compare benchmark spellings: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def builtin_dir() -> Path:
    """The bundled rubrics: inside the installed package, or the source checkout's."""
    here = Path(__file__).resolve().parent
    packaged = here / "_rubrics"
    return packaged if packaged.is_dir() else here.parent / "rubrics"


def load_rubric(path: Path) -> Rubric:
    try:
        data = read_small(path, "rubric")
    except UnsafePath as exc:
        raise RubricError(str(exc)) from None
    except OSError as exc:
        raise RubricError(f"cannot read rubric {path}: {exc.strerror or exc}") from None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RubricError(f"rubric {path} is not valid TOML: {exc}") from None
    unknown = set(table) - set(_FIELDS) - {"name"}
    if unknown:
        raise RubricError(f"rubric {path} has unknown key(s): {', '.join(sorted(unknown))}")
    missing = [f for f in _TEXT_FIELDS if not isinstance(table.get(f), str) or not table[f].strip()]
    if missing:
        raise RubricError(f"rubric {path} needs text for: {', '.join(missing)}")
    aliases = table.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise RubricError(f"rubric {path}: aliases must be a list of strings")
    name = table.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise RubricError(f"rubric {path}: name must be a string")
    form = form_of(_modes(path, table.get("failure_modes", {})), _criteria(path, table))
    return Rubric(
        name=name,
        title=table["title"].strip(),
        aliases=tuple(aliases),
        tests=table["tests"].strip(),
        rule=table["rule"].strip(),
        evidence=table["evidence"].strip(),
        reliability=table["reliability"].strip(),
        version=hashlib.sha256(data + b"\x00" + form.text().encode()).hexdigest()[:12],
        path=str(path),
        form=form,
    )


def _modes(path: Path, table: object) -> dict[str, str]:
    if not isinstance(table, dict):
        raise RubricError(f"rubric {path}: failure_modes must be a table of code = definition")
    for code, definition in table.items():
        if not _CODE.match(code) or code == NONE:
            raise RubricError(
                f"rubric {path}: failure mode {code!r} must be a lower-case code (letters, "
                f"digits, _), not {NONE!r}"
            )
        if not isinstance(definition, str) or not definition.strip():
            raise RubricError(f"rubric {path}: failure mode {code} needs a definition")
    return {code: " ".join(definition.split()) for code, definition in table.items()}


def _criteria(path: Path, table: dict[str, object]) -> list[Criterion]:
    items = table.get("criteria", [])
    if not isinstance(items, list):
        raise RubricError(f"rubric {path}: criteria must be an array of tables ([[criteria]])")
    out: list[Criterion] = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"name", "kind", "definition"}:
            raise RubricError(
                f"rubric {path}: each criterion needs exactly name, kind and definition"
            )
        name, kind, definition = item["name"], item["kind"], item["definition"]
        if not isinstance(name, str) or not _CODE.match(name) or name == "task_success":
            raise RubricError(f"rubric {path}: criterion name {name!r} must be a lower-case code")
        if kind not in CRITERION_KINDS:
            raise RubricError(
                f"rubric {path}: criterion {name}: kind must be one of {', '.join(CRITERION_KINDS)}"
            )
        if not isinstance(definition, str) or not definition.strip():
            raise RubricError(f"rubric {path}: criterion {name} needs a definition")
        if any(c.name == name for c in out):
            raise RubricError(f"rubric {path}: criterion {name} is declared twice")
        out.append(Criterion(name, kind, " ".join(definition.split())))
    return out


class RubricSet:
    """Rubrics by name, and the lookup from a benchmark's spelling to its rubric."""

    def __init__(self, rubrics: dict[str, Rubric]) -> None:
        if DEFAULT not in rubrics:
            raise RubricError(f"no {DEFAULT}.toml rubric: it grades sessions of other benchmarks")
        self._by_name = dict(sorted(rubrics.items()))
        self._aliases: dict[str, Rubric] = {}
        for rubric in self._by_name.values():
            for spelling in (rubric.name, *rubric.aliases):
                key = normalize(spelling)
                other = self._aliases.get(key)
                if other is not None and other.name != rubric.name:
                    raise RubricError(
                        f"alias {spelling!r} names both {other.name} and {rubric.name}"
                    )
                self._aliases[key] = rubric
        # Rubric names (not aliases: "retail" is too loose) also match as prefixes,
        # longest first, so that "swe_bench_verified_mini" finds swebench.
        self._prefixes = sorted(
            (normalize(name) for name in self._by_name if name != DEFAULT), key=len, reverse=True
        )
        self._cache: dict[str | None, Rubric] = {}

    @classmethod
    def load(cls, user_dir: str | Path | None = None) -> RubricSet:
        rubrics = {r.name: r for r in _load_dir(builtin_dir())}
        if user_dir is not None:
            folder = Path(user_dir)
            if not folder.is_dir():
                raise RubricError(f"rubrics folder {folder} does not exist")
            own = list(_load_dir(folder))
            if not own:
                raise RubricError(f"rubrics folder {folder} holds no .toml files")
            rubrics.update((r.name, r) for r in own)
        return cls(rubrics)

    def __iter__(self) -> Iterator[Rubric]:
        return iter(self._by_name.values())

    def __getitem__(self, name: str) -> Rubric:
        return self._by_name[name]

    def for_benchmark(self, benchmark: str | None) -> Rubric:
        """The rubric for a benchmark spelling: exact alias, else longest name prefix."""
        cached = self._cache.get(benchmark)
        if cached is not None:
            return cached
        rubric = self._by_name[DEFAULT]
        if benchmark:
            key = normalize(benchmark)
            found = self._aliases.get(key)
            if found is None and key:
                found = next(
                    (self._aliases[p] for p in self._prefixes if key.startswith(p)),
                    None,
                )
            rubric = found or rubric
        self._cache[benchmark] = rubric
        return rubric


def _load_dir(folder: Path) -> Iterator[Rubric]:
    for path in sorted(folder.glob("*.toml")):
        yield load_rubric(path)

"""Check that an exported GraphQL schema keeps the public contract.

Usage: check_contract.py [--exemptions FILE] CONTRACT_SDL EXPORTED_SDL

Every breaking change graphql-core's ``find_breaking_changes(contract, exported)`` reports fails
the check, and so does a changed or removed argument default value (clients rely on
``first: Int = 20``), unless the change lies under a schema coordinate listed in the exemption
file (default: ``contract-exemptions.txt`` beside this script). Any coordinate the contract names
may be exempted while the work that builds it is open; each line names that work in its comment
(``Patient.accessLog  # #20 ...``), so the list says who owes what.

The exemption list may only shrink: an exemption whose coordinate the exported schema now has,
compatible with the contract, is stale and fails the check until it is deleted.

Exit status: 0 when the exported schema keeps the contract, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from graphql import (
    BreakingChangeType,
    DangerousChangeType,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    is_enum_type,
    is_input_object_type,
    is_interface_type,
    is_introspection_type,
    is_object_type,
    is_specified_scalar_type,
)
from graphql.language import Lexer, Source, Token, TokenKind

DEFAULT_EXEMPTIONS = Path(__file__).with_name("contract-exemptions.txt")

# Dangerous (not breaking) changes that still break the contract: a default a client relies on.
FAILING_DANGEROUS = {
    DangerousChangeType.ARG_DEFAULT_VALUE_CHANGE,
    DangerousChangeType.INPUT_FIELD_DEFAULT_VALUE_CHANGE,
}

_NAME = r"[_A-Za-z][_0-9A-Za-z]*"
# The issue an exemption's comment names: "#20" or "issue 20".
_OWNER = re.compile(r"(?:#|\bissue\s+)\d+", re.IGNORECASE)
COORDINATE = re.compile(rf"{_NAME}(?:\.{_NAME}(?:\({_NAME}:\))?)?")

# How graphql-core 3.3 words each change; group "c" is the schema coordinate it is about.
_SUBJECT_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        rf"^(?:Field|Argument|Enum value|A required field|A required argument) "
        rf"(?P<c>{COORDINATE.pattern})[ .]",
        rf"^(?P<c>{_NAME}) (?:was removed\.|changed from |no longer implements )",
        rf"^{_NAME} was removed from union type (?P<c>{_NAME})\.$",
        rf"^(?P<c>{_NAME}\.{_NAME}(?:\({_NAME}:\))?) (?:defaultValue|has changed defaultValue)",
    )
]
_IMPLIED_SCALAR_REMOVAL = re.compile(
    rf"^Standard scalar {_NAME} was removed because it is not referenced anymore\.$"
)


@dataclass(frozen=True)
class Change:
    kind: str
    description: str
    subject: str | None  # schema coordinate the change is about; None if not recognised

    def __str__(self) -> str:
        return f"{self.kind}: {self.description}"


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    incompatible: dict[str, list[Change]] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stale


def within(coordinate: str, ancestor: str) -> bool:
    """Whether ``coordinate`` is ``ancestor`` or lies under it (``T`` > ``T.f`` > ``T.f(a:)``)."""
    return coordinate == ancestor or coordinate.startswith((f"{ancestor}.", f"{ancestor}("))


def subject_of(description: str) -> str | None:
    for pattern in _SUBJECT_PATTERNS:
        match = pattern.match(description)
        if match:
            return match["c"]
    return None


def coordinates(schema: GraphQLSchema) -> list[str]:
    """Every type, field, argument, input field and enum value coordinate of the schema.

    Standard scalars are left out: one is missing only when everything using it is.
    """
    result: list[str] = []
    for name, type_ in schema.type_map.items():
        if is_introspection_type(type_) or is_specified_scalar_type(type_):
            continue
        result.append(name)
        if is_object_type(type_) or is_interface_type(type_):
            for field_name, field_ in type_.fields.items():
                result.append(f"{name}.{field_name}")
                result.extend(f"{name}.{field_name}({arg}:)" for arg in field_.args)
        elif is_input_object_type(type_):
            result.extend(f"{name}.{field_name}" for field_name in type_.fields)
        elif is_enum_type(type_):
            result.extend(f"{name}.{value}" for value in type_.values)
    return result


def read_exemptions(path: Path, contract: GraphQLSchema) -> tuple[list[str], list[str]]:
    """The exemptions in file order, and the errors found in the file."""
    exemptions: list[str] = []
    errors: list[str] = []
    known = set(coordinates(contract))
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry, _, comment = (part.strip() for part in raw.partition("#"))
        if not entry:
            continue
        where = f"{path}:{number}: {entry!r}"
        if not COORDINATE.fullmatch(entry):
            errors.append(
                f"{where} is not a schema coordinate (Type, Type.field or Type.field(arg:))"
            )
        elif entry not in known:
            errors.append(f"{where} is not in the contract")
        elif not _OWNER.search(comment):
            errors.append(
                f"{where} does not name the issue that builds it (a comment such as '# #20')"
            )
        elif entry in exemptions:
            errors.append(f"{where} is listed twice")
        else:
            exemptions.append(entry)
    return exemptions, errors


def find_changes(contract: GraphQLSchema, exported: GraphQLSchema) -> list[Change]:
    changes = [
        Change(change.type.name, change.description, subject_of(change.description))
        for change in find_breaking_changes(contract, exported)
        if not (
            change.type is BreakingChangeType.TYPE_REMOVED
            and _IMPLIED_SCALAR_REMOVAL.match(change.description)
        )
    ]
    changes.extend(
        Change(change.type.name, change.description, subject_of(change.description))
        for change in find_dangerous_changes(contract, exported)
        if change.type in FAILING_DANGEROUS
    )
    return changes


def check(contract: GraphQLSchema, exported: GraphQLSchema, exemptions: Sequence[str]) -> Report:
    report = Report()
    changes = find_changes(contract, exported)
    exported_coordinates = set(coordinates(exported))
    contract_coordinates = coordinates(contract)

    # A type whose every contract field is exempt (e.g. Mutation) counts as exempt as a whole,
    # so "Mutation was removed." is exempt while every Mutation field still is.
    covering = list(exemptions)
    for name, type_ in contract.type_map.items():
        if (is_object_type(type_) or is_interface_type(type_)) and all(
            is_exempt(f"{name}.{field_name}", exemptions) for field_name in type_.fields
        ):
            covering.append(name)

    for change in changes:
        if change.subject is None or not is_exempt(change.subject, covering):
            report.failures.append(str(change))

    # Safety net: anything of the contract that is missing and no reported change accounts for.
    explained = [change.subject for change in changes if change.subject is not None]
    for coordinate in contract_coordinates:
        if (
            coordinate not in exported_coordinates
            and not is_exempt(coordinate, covering)
            and not is_exempt(coordinate, explained)
        ):
            report.failures.append(f"MISSING: {coordinate} is missing from the exported schema.")

    for exemption in exemptions:
        if exemption not in exported_coordinates:
            report.missing.append(exemption)
            continue
        own = [c for c in changes if c.subject is not None and within(c.subject, exemption)]
        absent = [
            c
            for c in contract_coordinates
            if within(c, exemption) and c not in exported_coordinates
        ]
        if own or absent:
            report.incompatible[exemption] = own
        else:
            report.stale.append(exemption)
    return report


def is_exempt(coordinate: str, exemptions: Iterable[str]) -> bool:
    return any(within(coordinate, exemption) for exemption in exemptions)


def drop_dangling_descriptions(sdl: str) -> tuple[str, list[int]]:
    """Blank out descriptions that describe nothing, and say on which lines they started.

    A file-level doc string (a description directly followed by another description, or by
    the end of the file) is not valid SDL, and graphql-core refuses the whole document.
    """
    descriptions = {TokenKind.STRING, TokenKind.BLOCK_STRING}
    lexer = Lexer(Source(sdl))
    dangling: list[Token] = []
    token = lexer.advance()
    while token.kind is not TokenKind.EOF:
        following = lexer.advance()
        if token.kind in descriptions and following.kind in descriptions | {TokenKind.EOF}:
            dangling.append(token)
        token = following
    chars = list(sdl)
    for token in dangling:
        chars[token.start : token.end] = [
            c if c in "\r\n" else " " for c in chars[token.start : token.end]
        ]
    return "".join(chars), [token.line for token in dangling]


def load_schema(path: Path) -> GraphQLSchema:
    try:
        sdl = path.read_text(encoding="utf-8")
        try:
            sdl, lines = drop_dangling_descriptions(sdl)
        except GraphQLError:
            lines = []  # let build_schema report the syntax error
        for line in lines:
            print(f"note: {path}:{line}: ignoring a description that describes no definition")
        return build_schema(sdl)
    except (OSError, GraphQLError, TypeError) as error:
        raise SystemExit(f"error: cannot build a schema from {path}: {error}") from error


def print_report(report: Report, exemptions_path: Path) -> None:
    if report.failures:
        print(f"FAIL: {len(report.failures)} breaking change(s) not covered by {exemptions_path}:")
        for failure in report.failures:
            print(f"  {failure}")
    else:
        print("No breaking changes outside the exemptions.")

    if report.missing:
        print()
        print("still missing (exempt, owned by later issues):")
        for coordinate in report.missing:
            print(f"  {coordinate}")

    if report.incompatible:
        print()
        print("present but not yet compatible with the contract (exempt, owned by later issues):")
        for coordinate, changes in report.incompatible.items():
            print(f"  {coordinate}")
            for change in changes:
                print(f"    {change}")

    if report.stale:
        print()
        for coordinate in report.stale:
            print(
                f"warning: exemption {coordinate} is no longer needed: the exported schema has it "
                f"and it matches the contract; delete it from {exemptions_path}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("contract", type=Path, help="the contract's SDL (schema.graphql)")
    parser.add_argument("exported", type=Path, help="the SDL the server exports")
    parser.add_argument(
        "--exemptions",
        type=Path,
        default=DEFAULT_EXEMPTIONS,
        help=f"schema coordinates allowed to be missing (default: {DEFAULT_EXEMPTIONS})",
    )
    args = parser.parse_args(argv)

    contract = load_schema(args.contract)
    exported = load_schema(args.exported)
    try:
        exemptions, errors = read_exemptions(args.exemptions, contract)
    except OSError as error:
        print(f"error: cannot read the exemptions: {error}", file=sys.stderr)
        return 1
    if errors:
        print(f"FAIL: invalid exemptions in {args.exemptions}:")
        for message in errors:
            print(f"  {message}")
        return 1

    print(f"Contract check: {args.contract} vs {args.exported}")
    report = check(contract, exported, exemptions)
    print_report(report, args.exemptions)
    print()
    if report.ok:
        print("OK: the exported schema keeps the contract (up to the exemptions above).")
        return 0
    reasons = []
    if report.failures:
        reasons.append(f"{len(report.failures)} breaking change(s)")
    if report.stale:
        reasons.append(f"{len(report.stale)} stale exemption(s)")
    print(f"FAIL: {' and '.join(reasons)}.")
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""Build the Cloud Functions source bundle: one deterministic zip.

Cloud Functions (2nd gen, Python) builds a function from a zip whose root holds
`main.py` and `requirements.txt`. Ours holds:

- `main.py`          copied from `functions/main.py` (the entry points);
- `shared/...`       the core library, as source, so the deployed code is
                     exactly this checkout's;
- `requirements.txt` `infra/requirements.lock`: every distribution the base
                     dependencies and the `[gcp]` extra need, transitively,
                     pinned to the version the tests ran with. The lock is
                     written by `--write-lock` from this environment (CI
                     installs with it as constraints, so the suite runs the
                     pinned set), and a lock that no longer satisfies
                     `pyproject.toml` is refused: two builds of one commit run
                     the same code. pip-tools could resolve a lock from the
                     index instead, but the point is the versions that were
                     tested, which only the installed environment knows.
- `config/...`       with `--config-dir DIR`: the deployment's config.json and
                     CA certificates (what `CIRRUS_CONFIG` names). Private keys
                     (PEM, DER, PKCS#12, private JWKs, anything under secrets/)
                     are refused: in this shape they live in Cloud KMS.

The zip is deterministic: entries sorted, fixed timestamps and permissions, no
caches. The same checkout therefore gives the same bytes, hence the same MD5,
and Terraform (which names the uploaded object by that MD5) redeploys the
functions only when their source really changed.

Usage::

    python infra/bundle.py [--root REPO] [--out dist/cirrus-functions.zip] [--config-dir DIR]
    python infra/bundle.py --write-lock      (after changing dependencies: re-pin from this environment)

It prints the bundle's path and SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

#: DOS timestamps start in 1980; every entry gets this one.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
#: Regular file, rw-r--r--, in the upper 16 bits as Unix zips store it.
FILE_MODE = 0o100644 << 16
#: Compression level fixed so the bytes do not depend on zlib's default.
COMPRESS_LEVEL = 9
#: Extra a deployed function needs on top of the base dependencies.
EXTRA = "gcp"
#: Directory and file names never shipped: build caches and editor litter.
EXCLUDED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")

DEFAULT_OUT = Path("dist") / "cirrus-functions.zip"
#: Where --config-dir lands inside the bundle; CIRRUS_CONFIG=config/config.json.
CONFIG_PREFIX = "config/"
#: Markers of private key material that must never be uploaded in a bundle.
SECRET_MARKERS = (b"PRIVATE KEY", b'"d"')
#: Containers that hold a private key whatever their bytes look like.
SECRET_SUFFIXES = (".p12", ".pfx", ".p8", ".key")
#: The pinned requirements, relative to the checkout.
LOCK = Path("infra") / "requirements.lock"
LOCK_HEADER = (
    "# The deployed functions' requirements, pinned to what the tests ran with.\n"
    "# Written by `python infra/bundle.py --write-lock`; infra/test.sh installs with it as constraints.\n"
)


class BundleError(Exception):
    """The checkout cannot be bundled (a required file is missing or malformed)."""


def requirements(pyproject: Path, extra: str = EXTRA) -> list[str]:
    """Return the requirement lines for a deployed function.

    The base dependencies come first, then the extra's, each once, in the
    order `pyproject.toml` lists them (an operator diffing two bundles sees
    real changes, not reordering).

    Raises:
        BundleError: if the file has no `[project]` table or lacks the extra.
    """
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BundleError(f"cannot read {pyproject}: {exc}") from exc
    project = data.get("project")
    if not isinstance(project, dict):
        raise BundleError(f"{pyproject} has no [project] table")
    extras = project.get("optional-dependencies", {})
    if extra not in extras:
        raise BundleError(f"{pyproject} defines no [{extra}] extra")
    lines: list[str] = []
    for requirement in [*project.get("dependencies", []), *extras[extra]]:
        if requirement not in lines:
            lines.append(requirement)
    return lines


def _closure(top: list[str]) -> dict[str, str]:
    """Every distribution `top` needs in this environment, transitively: canonical name -> version.

    Markers are evaluated here (Linux, this Python), which is the deployed runtime's platform.

    Raises:
        BundleError: a requirement is not installed or its version does not satisfy the specifier.
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    queue: list[tuple[Requirement, str]] = [(Requirement(line), "") for line in top]
    while queue:
        req, parent_extra = queue.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": parent_extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise BundleError(f"{req.name} is not installed: install the [{EXTRA}] extra first") from None
        if not req.specifier.contains(dist.version, prereleases=True):
            raise BundleError(f"installed {req.name} {dist.version} does not satisfy {req}")
        pins[name] = dist.version
        for extra in ["", *sorted(req.extras)]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            queue.extend((Requirement(line), extra) for line in dist.requires or [])
    return pins


def lock_text(pyproject: Path) -> str:
    """The lock file for this environment: `name==version` per needed distribution, sorted."""
    pins = _closure(requirements(pyproject))
    return LOCK_HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def locked_requirements(root: Path) -> str:
    """The checkout's lock file, checked against `pyproject.toml`.

    Raises:
        BundleError: no lock, or a lock that misses a requirement or pins a version it excludes.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    path = root / LOCK
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise BundleError(f"{path} is missing: run `python infra/bundle.py --write-lock`") from None
    pins: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            if not sep:
                raise BundleError(f"{path}: {line!r} is not pinned with ==")
            pins[canonicalize_name(name)] = version
    for line in requirements(root / "pyproject.toml"):
        req = Requirement(line)
        version = pins.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            raise BundleError(f"{path} is stale for {req}: run `python infra/bundle.py --write-lock`")
    return text


def _is_private_key(path: Path, data: bytes) -> bool:
    """PEM or DER private keys (encrypted ones too), PKCS#12 containers and private JWKs."""
    if "secrets" in path.parts or path.name.endswith(SECRET_SUFFIXES):
        return True
    if any(marker in data for marker in SECRET_MARKERS):
        return True
    from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12

    try:
        load_der_private_key(data, password=None)
        return True
    except TypeError:  # an encrypted PKCS#8 key: asks for a password
        return True
    except Exception:
        der_key = False
    try:
        key, _, _ = pkcs12.load_key_and_certificates(data, None)
        return der_key or key is not None
    except Exception:
        return der_key


def _package_files(package_dir: Path) -> Iterator[Path]:
    """Yield the files of a package directory that belong in the bundle."""
    for path in package_dir.rglob("*"):
        relative = path.relative_to(package_dir)
        if any(part in EXCLUDED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(EXCLUDED_SUFFIXES):
            yield path


def config_entries(config_dir: Path) -> dict[str, bytes]:
    """Return the files of a deployment config folder, under `config/`.

    The bundle is uploaded to a bucket and readable by anyone who can deploy,
    so key material is refused outright rather than filtered: a folder that
    holds a key is the wrong folder.

    Raises:
        BundleError: if the folder lacks config.json or holds private key material.
    """
    if not (config_dir / "config.json").is_file():
        raise BundleError(f"{config_dir} has no config.json")
    entries: dict[str, bytes] = {}
    for path in _package_files(config_dir):
        data = path.read_bytes()
        relative = path.relative_to(config_dir)
        if _is_private_key(relative, data):
            raise BundleError(f"{path} looks like private key material; keys belong in Cloud KMS")
        entries[CONFIG_PREFIX + relative.as_posix()] = data
    return entries


def bundle_entries(root: Path, *, config_dir: Path | None = None) -> dict[str, bytes]:
    """Return the bundle's contents as archive name -> bytes.

    Raises:
        BundleError: if `functions/main.py`, `shared/` or `pyproject.toml` is
            missing, or the config folder is unfit (see `config_entries`).
    """
    main = root / "functions" / "main.py"
    shared = root / "shared"
    if not main.is_file():
        raise BundleError(f"{main} does not exist: nothing to deploy")
    if not (shared / "__init__.py").is_file():
        raise BundleError(f"{shared} is not a package")
    entries: dict[str, bytes] = {"main.py": main.read_bytes()}
    for path in _package_files(shared):
        entries[path.relative_to(root).as_posix()] = path.read_bytes()
    entries["requirements.txt"] = locked_requirements(root).encode("utf-8")
    if config_dir is not None:
        entries.update(config_entries(config_dir))
    return entries


def write_zip(entries: dict[str, bytes], out: Path) -> str:
    """Write `entries` as a deterministic zip at `out`; return its SHA-256 hex.

    Written to a temporary name and renamed, so a reader (or Terraform's
    `filemd5`) never sees half a bundle.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.create_system = 3  # Unix, whatever machine builds it
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=COMPRESS_LEVEL)
    partial.replace(out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def build(root: Path, out: Path, *, config_dir: Path | None = None) -> str:
    """Build the bundle of the checkout at `root` into `out`; return its SHA-256."""
    return write_zip(bundle_entries(root, config_dir=config_dir), out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: build the bundle, print its path and digest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository checkout to bundle (default: this file's repository)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"zip to write (default: ROOT/{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="deployment config folder (config.json + CA certificates) to ship under config/",
    )
    parser.add_argument(
        "--write-lock",
        action="store_true",
        help=f"write ROOT/{LOCK} from the installed environment (after the tests pass) instead of building",
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.write_lock:
        try:
            text = lock_text(root / "pyproject.toml")
        except BundleError as exc:
            print(f"bundle: {exc}", file=sys.stderr)
            return 1
        (root / LOCK).write_text(text, encoding="utf-8")
        print(f"{root / LOCK}: {text.count(chr(10)) - LOCK_HEADER.count(chr(10))} pins")
        return 0
    out: Path = args.out if args.out is not None else root / DEFAULT_OUT
    try:
        digest = build(root, out, config_dir=args.config_dir)
    except BundleError as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    print(f"{out} sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

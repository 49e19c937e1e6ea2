"""Build the Lambda dependency layer zip, reproducibly.

    python tools/package_layer.py [--requirements lambdas/requirements.txt]
        [--out build/layer.zip] [--python-version 3.13]

Two builds from the same requirements give identical zip bytes, so the layer
hash only changes when its contents do (and Pulumi only publishes a new layer
version when something really changed).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags, parse_tag

DEFAULT_REQUIREMENTS = Path("lambdas/requirements.txt")
DEFAULT_LAYER_ZIP = Path("build/layer.zip")
# Lambda runs the functions on arm64 (Graviton) with the python3.13 runtime, which is Amazon Linux 2023
# ("Lambda runtimes", https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html) with glibc 2.34
# ("Core toolchain packages glibc, gcc, binutils", https://docs.aws.amazon.com/linux/al2023/ug/core-glibc.html).
LAMBDA_PYTHON_VERSION = "3.13"
LAMBDA_ARCH = "aarch64"
LAMBDA_GLIBC = (2, 34)
# PEP 600: a manylinux_2_Y wheel runs on any glibc >= 2.Y; 2.17 is the oldest level pip still builds for
# aarch64, and PEP 599 calls it manylinux2014 (https://peps.python.org/pep-0600/, pep-0599/).
OLDEST_GLIBC_MINOR = 17
LEGACY_MANYLINUX = {17: "manylinux2014"}

# Lambda only adds `/opt/python` to sys.path, so a Python layer keeps everything there.
LAYER_SITE_DIR = "python"

# The earliest time a zip can store. Fixed so that file mtimes never reach the zip.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_COMPRESSLEVEL = 9
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
# Marks entries as Unix-made, so unzip honours the permission bits.
_ZIP_CREATE_SYSTEM_UNIX = 3

PipRunner = Callable[[list[str]], subprocess.CompletedProcess[str]]


class LayerBuildError(Exception):
    """A build failure that the CLI reports as one line, without a traceback."""


@dataclass(frozen=True)
class LayerResult:
    path: Path
    size_bytes: int
    unzipped_bytes: int
    sha256: str
    pinned: int
    unpinned: int
    distributions: int


def lambda_platforms(arch: str = LAMBDA_ARCH, glibc: tuple[int, int] = LAMBDA_GLIBC) -> list[str]:
    """Every manylinux platform tag the Lambda runtime's glibc loads, newest first. pip does not widen a
    `--platform manylinux_2_Y` to older levels itself, so each one is passed."""
    major, newest = glibc
    platforms = []
    for minor in range(newest, OLDEST_GLIBC_MINOR - 1, -1):
        platforms.append(f"manylinux_{major}_{minor}_{arch}")
        if minor in LEGACY_MANYLINUX:
            platforms.append(f"{LEGACY_MANYLINUX[minor]}_{arch}")
    return platforms


def lambda_tags(
    python_version: str = LAMBDA_PYTHON_VERSION, platforms: Sequence[str] | None = None
) -> set[Tag]:
    """The wheel tags the runtime can import, computed as pip computes them for a target interpreter."""
    version = tuple(int(part) for part in python_version.split("."))
    platforms = list(platforms or lambda_platforms())
    abi = f"cp{version[0]}{version[1]}"
    return {*cpython_tags(version, [abi], platforms), *compatible_tags(version, abi, platforms)}


def unloadable_wheels(site_dir: Path, python_version: str = LAMBDA_PYTHON_VERSION) -> list[str]:
    """Installed distributions none of whose wheel tags Lambda can load ("name-version (tags)")."""
    accepted = lambda_tags(python_version)
    found = []
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        wheel_file = dist_info / "WHEEL"
        text = wheel_file.read_text(encoding="utf-8") if wheel_file.is_file() else ""
        values = HeaderParser().parsestr(text).get_all("Tag") or []
        if not accepted.intersection(tag for value in values for tag in parse_tag(value)):
            found.append(
                f"{dist_info.name.removesuffix('.dist-info')} ({', '.join(values) or 'no WHEEL tag'})"
            )
    return found


def pip_install_command(
    requirements: Path, site_dir: Path, *, python_version: str, platforms: Sequence[str]
) -> list[str]:
    """The pip call that fetches wheels for Lambda's platform, not the host's."""
    platform_options = [option for platform in platforms for option in ("--platform", platform)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--requirement",
        str(requirements),
        "--target",
        str(site_dir),
        *platform_options,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        # Wheels only: building an sdist here would compile for the host, not Lambda.
        "--only-binary=:all:",
        # .pyc files would be made by the host's Python, which Lambda's would not use.
        "--no-compile",
        "--disable-pip-version-check",
        "--quiet",
    ]


def _run_pip(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    # No shell; the arguments come from this script and its own CLI options.
    return subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[-1].removeprefix("ERROR:").strip()
    return lines[-1] if lines else "no output from pip"


def count_requirements(requirements: Path) -> tuple[int, int]:
    """(pinned, unpinned) requirement lines; options such as `-r` are not counted."""
    pinned = unpinned = 0
    for raw in requirements.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        if "==" in line:
            pinned += 1
        else:
            unpinned += 1
    return pinned, unpinned


def _record_entry_kept(site_dir: Path, rel: str) -> bool:
    norm = posixpath.normpath(rel)
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
        return False
    return (site_dir / norm).exists()


def _prune_record(site_dir: Path, record: Path) -> None:
    """Drop RECORD rows for files that are not in the layer.

    pip lists the console scripts as `../../bin/<name>` with the hash of the script,
    whose shebang is the build machine's interpreter path. Keeping those rows would
    make the layer differ from one build machine to the next.
    """
    data = record.read_bytes()
    lines = data.decode("utf-8").splitlines(keepends=True)
    kept: list[str] = []
    for line in lines:
        row = next(csv.reader([line]), [])
        if not row or _record_entry_kept(site_dir, row[0]):
            # The original text is kept so untouched rows stay byte-identical.
            kept.append(line)
    if len(kept) != len(lines):
        record.write_bytes("".join(kept).encode("utf-8"))


def clean_tree(site_dir: Path) -> list[str]:
    """Remove what is host-dependent or useless on Lambda; returns the removed paths.

    Two installs on one machine were byte-identical already (RECORD, INSTALLER and
    REQUESTED included), so only files that change with the host are removed.
    """
    removed: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(site_dir):
        here = Path(dirpath)
        for name in list(dirnames):
            # Console scripts (top-level bin/): their shebang is the host's
            # interpreter, and Lambda puts /opt/bin, not /opt/python/bin, on PATH.
            # Bytecode (__pycache__): made by the host's Python; Lambda compiles its own.
            scripts = here == site_dir and name == "bin" and not (here / name / "__init__.py").exists()
            if name == "__pycache__" or scripts:
                removed.append(here / name)
                dirnames.remove(name)
        for name in filenames:
            stray_bytecode = name.endswith((".pyc", ".pyo"))
            # Written only for URL or local-path installs; it holds the host's path.
            local_url = name == "direct_url.json" and here.name.endswith(".dist-info")
            if stray_bytecode or local_url:
                removed.append(here / name)
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    for record in sorted(site_dir.glob("*.dist-info/RECORD")):
        _prune_record(site_dir, record)
    return sorted(p.relative_to(site_dir).as_posix() for p in removed)


def deterministic_zip(src_dir: Path, out_path: Path) -> str:
    """Zip every file under src_dir (paths relative to it); returns the sha256 hex.

    Same file names and contents give the same bytes, whatever the mtimes, umask,
    or the order the files were made in. A symlinked file is stored as its target's bytes.
    """
    files = sorted((p.relative_to(src_dir).as_posix(), p) for p in src_dir.rglob("*") if p.is_file())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Written next to the target and renamed, so a failed build never leaves a
    # truncated zip where deploys would pick it up.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for rel, path in files:
                info = zipfile.ZipInfo(rel, date_time=ZIP_DATE_TIME)
                info.create_system = _ZIP_CREATE_SYSTEM_UNIX
                mode = EXECUTABLE_MODE if path.stat().st_mode & 0o111 else FILE_MODE
                info.external_attr = (0o100000 | mode) << 16  # S_IFREG | mode
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(
                    info,
                    path.read_bytes(),
                    compress_type=zipfile.ZIP_DEFLATED,
                    compresslevel=ZIP_COMPRESSLEVEL,
                )
        # mkstemp makes the file 0600; give it the usual mode for a build output.
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, out_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256()
    with out_path.open("rb") as zipped:
        for chunk in iter(lambda: zipped.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_layer(
    requirements: Path,
    out_path: Path,
    *,
    python_version: str = LAMBDA_PYTHON_VERSION,
    runner: PipRunner | None = None,
) -> LayerResult:
    if not requirements.is_file():
        raise LayerBuildError(f"requirements file not found: {requirements}")
    pinned, unpinned = count_requirements(requirements)
    # Looked up at call time so tests can replace `_run_pip`.
    run = runner if runner is not None else _run_pip
    with tempfile.TemporaryDirectory(prefix="layer-") as tmp:
        root = Path(tmp)
        site_dir = root / LAYER_SITE_DIR
        platforms = lambda_platforms()
        cmd = pip_install_command(requirements, site_dir, python_version=python_version, platforms=platforms)
        proc = run(cmd)
        target = f"{LAMBDA_ARCH} glibc {'.'.join(map(str, LAMBDA_GLIBC))} cp{python_version}"
        if proc.returncode != 0:
            reason = _last_error_line(f"{proc.stdout}\n{proc.stderr}")
            raise LayerBuildError(f"pip could not resolve wheels for Lambda ({target}): {reason}")
        if proc.stderr.strip():
            # pip's warnings (yanked releases, index problems) are worth seeing.
            sys.stderr.write(proc.stderr)
        if not site_dir.is_dir():
            raise LayerBuildError(f"pip installed nothing into {site_dir}")
        # pip chose by the platforms above; this checks what it actually put in, before anything is zipped.
        unloadable = unloadable_wheels(site_dir, python_version)
        if unloadable:
            raise LayerBuildError(f"wheels Lambda ({target}) cannot load: {'; '.join(unloadable)}")
        clean_tree(site_dir)
        distributions = sum(1 for _ in site_dir.glob("*.dist-info"))
        unzipped = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        # Zipped from the parent, so every entry starts with `python/`.
        sha256 = deterministic_zip(root, out_path)
    return LayerResult(
        path=out_path,
        size_bytes=out_path.stat().st_size,
        unzipped_bytes=unzipped,
        sha256=sha256,
        pinned=pinned,
        unpinned=unpinned,
        distributions=distributions,
    )


def format_result(result: LayerResult) -> str:
    # MiB, labelled MB as in AWS's Lambda quotas (50 MB zipped, 250 MB unzipped).
    mib = 1024 * 1024
    reqs = f"{result.pinned} pinned requirements"
    if result.unpinned:
        reqs += f", {result.unpinned} unpinned"
    return (
        f"{result.path}  {result.size_bytes / mib:.1f} MB"
        f" ({result.unzipped_bytes / mib:.1f} MB unzipped)"
        f"  sha256={result.sha256}"
        f"  {reqs} ({result.distributions} distributions)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requirements", type=Path, default=DEFAULT_REQUIREMENTS)
    parser.add_argument("--out", type=Path, default=DEFAULT_LAYER_ZIP)
    parser.add_argument("--python-version", default=LAMBDA_PYTHON_VERSION)
    args = parser.parse_args(argv)
    try:
        result = build_layer(args.requirements, args.out, python_version=args.python_version)
    except (LayerBuildError, OSError) as exc:
        print(f"package_layer: {exc}", file=sys.stderr)
        return 1
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

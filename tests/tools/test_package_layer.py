"""tools/package_layer.py without pip or network: the zip writer, the cleaner, the wiring."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.tags import parse_tag

from tools import package_layer
from tools.package_layer import (
    ZIP_DATE_TIME,
    LayerBuildError,
    build_layer,
    clean_tree,
    count_requirements,
    deterministic_zip,
    main,
)

# Deliberately not in sorted order; "a-b.txt" sorts before "a/..." ("-" < "/").
TREE: dict[str, bytes] = {
    "python/zeta.py": b"Z = 1\n",
    "python/a/inner.py": b"x = 1\n",
    "python/a-b.txt": b"dash\n",
    "python/A.txt": b"upper\n",
    "python/pkg/sub/deep.json": b"{}\n",
    "python/pkg/__init__.py": b"",
}


def _make_tree(root: Path, files: Iterable[str], mtime: int) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(TREE[rel])
        os.utime(path, (mtime, mtime))
    return root


def _zip_tree(tmp_path: Path, name: str, mtime: int, order: Iterable[str]) -> tuple[bytes, str]:
    out = tmp_path / f"{name}.zip"
    sha = deterministic_zip(_make_tree(tmp_path / name, order, mtime), out)
    return out.read_bytes(), sha


def test_same_tree_with_other_mtimes_and_creation_order_zips_to_identical_bytes(tmp_path: Path) -> None:
    data1, sha1 = _zip_tree(tmp_path, "one", 1_500_000_000, list(TREE))
    data2, sha2 = _zip_tree(tmp_path, "two", 1_700_000_000, reversed(list(TREE)))

    assert data1 == data2
    assert sha1 == sha2 == hashlib.sha256(data1).hexdigest()


def test_entries_are_sorted_posix_paths_with_no_directory_entries(tmp_path: Path) -> None:
    out = tmp_path / "layer.zip"
    deterministic_zip(_make_tree(tmp_path / "src", TREE, 1_600_000_000), out)

    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert names == [
        "python/A.txt",
        "python/a-b.txt",
        "python/a/inner.py",
        "python/pkg/__init__.py",
        "python/pkg/sub/deep.json",
        "python/zeta.py",
    ]


def test_timestamps_are_fixed_whatever_the_file_mtime(tmp_path: Path) -> None:
    out = tmp_path / "layer.zip"
    deterministic_zip(_make_tree(tmp_path / "src", TREE, 1_700_000_000), out)

    with zipfile.ZipFile(out) as zf:
        assert {info.date_time for info in zf.infolist()} == {ZIP_DATE_TIME}
        assert ZIP_DATE_TIME == (1980, 1, 1, 0, 0, 0)


def test_permissions_are_normalised_to_644_or_755(tmp_path: Path) -> None:
    src = tmp_path / "src"
    modes = {"private.py": 0o600, "shared.py": 0o666, "tool.so": 0o700, "script": 0o775}
    for name, mode in modes.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"x")
        (src / name).chmod(mode)
    out = tmp_path / "layer.zip"
    deterministic_zip(src, out)

    with zipfile.ZipFile(out) as zf:
        got = {info.filename: info.external_attr >> 16 for info in zf.infolist()}
        systems = {info.create_system for info in zf.infolist()}
        methods = {info.compress_type for info in zf.infolist()}
    assert {name: stat.S_IMODE(mode) for name, mode in got.items()} == {
        "private.py": 0o644,
        "shared.py": 0o644,
        "tool.so": 0o755,
        "script": 0o755,
    }
    assert all(stat.S_ISREG(mode) for mode in got.values())
    assert systems == {3}  # Unix, or unzip ignores the mode bits
    assert methods == {zipfile.ZIP_DEFLATED}


def test_changed_content_changes_the_sha(tmp_path: Path) -> None:
    src = _make_tree(tmp_path / "src", TREE, 1_600_000_000)
    before = deterministic_zip(src, tmp_path / "before.zip")
    (src / "python/pkg/sub/deep.json").write_bytes(b'{"changed": true}\n')
    after = deterministic_zip(src, tmp_path / "after.zip")

    assert before != after


def test_zip_replaces_the_old_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "build"
    out_dir.mkdir()
    out = out_dir / "layer.zip"
    out.write_bytes(b"stale")
    sha = deterministic_zip(_make_tree(tmp_path / "src", TREE, 1_600_000_000), out)

    assert sorted(p.name for p in out_dir.iterdir()) == ["layer.zip"]
    assert sha == hashlib.sha256(out.read_bytes()).hexdigest()
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        assert zf.read("python/zeta.py") == b"Z = 1\n"


def _write(path: Path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_clean_tree_removes_bytecode_scripts_and_direct_url_but_keeps_runtime_files(tmp_path: Path) -> None:
    site = tmp_path / "python"
    keep = [
        "pkg/__init__.py",
        "pkg/_ext.cpython-313-aarch64-linux-gnu.so",
        "pkg/bin/helper.py",  # a package's own bin/ is code, not console scripts
        "pkg/py.typed",
        "pkg-1.0.dist-info/METADATA",
        "pkg-1.0.dist-info/INSTALLER",
        "pkg-1.0.dist-info/REQUESTED",
        "pkg-1.0.dist-info/RECORD",
        "mod.py",
    ]
    drop = [
        "bin/pkg-cli",
        "__pycache__/mod.cpython-311.pyc",
        "pkg/__pycache__/__init__.cpython-313.pyc",
        "pkg/stray.pyc",
        "pkg-1.0.dist-info/direct_url.json",
    ]
    for rel in keep + drop:
        _write(site / rel)

    removed = clean_tree(site)

    assert _files(site) == sorted(keep)
    assert removed == [
        "__pycache__",
        "bin",
        "pkg-1.0.dist-info/direct_url.json",
        "pkg/__pycache__",
        "pkg/stray.pyc",
    ]


def test_clean_tree_keeps_a_top_level_bin_package(tmp_path: Path) -> None:
    site = tmp_path / "python"
    _write(site / "bin/__init__.py")

    assert clean_tree(site) == []
    assert _files(site) == ["bin/__init__.py"]


def test_clean_tree_prunes_record_rows_for_files_not_shipped(tmp_path: Path) -> None:
    site = tmp_path / "python"
    _write(site / "pkg/__init__.py")
    _write(site / "pkg/__pycache__/__init__.cpython-313.pyc")
    _write(site / "bin/pkg-cli", b"#!/home/someone/.venv/bin/python\n")
    # pip writes RECORD with CRLF rows; kept rows must stay byte-identical.
    record = (
        b"../../bin/pkg-cli,sha256=machinedependent,36\r\n"
        b"pkg/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\r\n"
        b"pkg/__pycache__/__init__.cpython-313.pyc,,\r\n"
        b'"pkg/odd,name.py",sha256=gone,1\r\n'
        b"pkg-1.0.dist-info/RECORD,,\r\n"
    )
    _write(site / "pkg-1.0.dist-info/RECORD", record)

    clean_tree(site)

    assert (site / "pkg-1.0.dist-info/RECORD").read_bytes() == (
        b"pkg/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\r\n"
        b"pkg-1.0.dist-info/RECORD,,\r\n"
    )


def test_count_requirements_counts_pins_and_skips_comments_and_options(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# a comment\n\n-r other.txt\n--only-binary=:all:\n"
        "aws-lambda-powertools[tracer]==3.37.0  # why\nstripe==16.1.0\nrequests>=2\n"
    )

    assert count_requirements(req) == (2, 1)


class FakePip:
    """Stands in for `pip install --target`: records the command, drops in a site tree."""

    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.returncode = returncode
        self.stderr = stderr
        self.cmd: list[str] = []

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        self.cmd = cmd
        if self.returncode == 0:
            site = Path(cmd[cmd.index("--target") + 1])
            _write(site / "stripe/__init__.py", b"VERSION = '16.1.0'\n")
            _write(site / "stripe/__pycache__/__init__.cpython-311.pyc", b"\x00")
            _write(site / "stripe-16.1.0.dist-info/METADATA", b"Name: stripe\n")
            _write(site / "stripe-16.1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nTag: py3-none-any\n")
            _write(site / "bin/stripe", b"#!/tmp/venv/bin/python\n")
        return subprocess.CompletedProcess(cmd, self.returncode, stdout="", stderr=self.stderr)


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    req = tmp_path / "requirements.txt"
    req.write_text("stripe==16.1.0\npydantic==2.14.3\n")
    return req


def test_build_layer_asks_pip_for_lambda_wheels_and_zips_under_python_prefix(
    tmp_path: Path, requirements: Path
) -> None:
    pip = FakePip()
    out = tmp_path / "build/layer.zip"

    result = build_layer(requirements, out, python_version="3.13", runner=pip)

    cmd = pip.cmd
    assert cmd[1:4] == ["-m", "pip", "install"]
    assert cmd[cmd.index("--requirement") + 1] == str(requirements)
    assert Path(cmd[cmd.index("--target") + 1]).name == "python"
    platforms = [cmd[index + 1] for index, arg in enumerate(cmd) if arg == "--platform"]
    assert platforms == package_layer.lambda_platforms()
    assert cmd[cmd.index("--implementation") + 1] == "cp"
    assert cmd[cmd.index("--python-version") + 1] == "3.13"
    assert {"--only-binary=:all:", "--no-compile"} <= set(cmd)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [
            "python/stripe-16.1.0.dist-info/METADATA",
            "python/stripe-16.1.0.dist-info/WHEEL",
            "python/stripe/__init__.py",
        ]
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (result.pinned, result.unpinned, result.distributions) == (2, 0, 1)


def test_build_layer_reports_pips_last_error_line(tmp_path: Path, requirements: Path) -> None:
    pip = FakePip(
        returncode=1,
        stderr=(
            "ERROR: Could not find a version that satisfies the requirement stripe==99\n"
            "ERROR: No matching distribution found for stripe==99\n"
        ),
    )
    out = tmp_path / "layer.zip"

    with pytest.raises(LayerBuildError) as excinfo:
        build_layer(requirements, out, python_version="3.13", runner=pip)

    assert str(excinfo.value) == (
        "pip could not resolve wheels for Lambda (aarch64 glibc 2.34 cp3.13): "
        "No matching distribution found for stripe==99"
    )
    assert not out.exists()


def test_cli_failure_is_one_line_on_stderr_and_exit_1(
    tmp_path: Path, requirements: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(package_layer, "_run_pip", FakePip(returncode=1, stderr="ERROR: boom\n"))

    code = main(["--requirements", str(requirements), "--out", str(tmp_path / "layer.zip")])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == (
        "package_layer: pip could not resolve wheels for Lambda (aarch64 glibc 2.34 cp3.13): boom\n"
    )


def test_cli_success_prints_one_line_with_path_size_sha_and_pins(
    tmp_path: Path, requirements: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(package_layer, "_run_pip", FakePip())
    out = tmp_path / "layer.zip"

    code = main(["--requirements", str(requirements), "--out", str(out)])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) == 1
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert lines[0].startswith(f"{out}  0.0 MB")
    assert f"sha256={sha}" in lines[0]
    assert "2 pinned requirements" in lines[0]


# --- which wheels the layer accepts (issue 18 item 9) ----------------------------------------------


def test_the_platforms_are_every_manylinux_level_lambdas_glibc_loads() -> None:
    platforms = package_layer.lambda_platforms()

    # PEP 600: manylinux_2_Y runs on glibc >= 2.Y; python3.13 on Lambda is Amazon Linux 2023, glibc 2.34.
    levels = {int(p.split("_")[2]) for p in platforms if p.startswith("manylinux_2_")}
    assert levels == set(range(17, 35))
    assert "manylinux2014_aarch64" in platforms  # PEP 599's name for manylinux_2_17
    assert all(p.endswith("_aarch64") for p in platforms)
    assert "linux_aarch64" not in platforms  # built for one machine, not portable


def _wheel(index: Path, name: str, tag: str) -> None:
    """A minimal wheel, enough for pip to select and install it."""
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }
    record = "".join(
        f"{path},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}\n" for path, data in files.items()
    )
    with zipfile.ZipFile(index / f"{name}-1.0-{tag}.whl", "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{dist}/RECORD", record + f"{dist}/RECORD,,\n")


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


LOADABLE = {
    "legacy": "cp313-cp313-manylinux2014_aarch64",
    "newer": "cp313-cp313-manylinux_2_28_aarch64",
    "newest": "cp313-cp313-manylinux_2_34_aarch64",
    "stable": "cp39-abi3-manylinux_2_17_aarch64",
    "pure": "py3-none-any",
}
UNLOADABLE = {
    "toonew": "cp313-cp313-manylinux_2_35_aarch64",
    "intel": "cp313-cp313-manylinux_2_17_x86_64",
    "local": "cp313-cp313-linux_aarch64",
    "older": "cp312-cp312-manylinux_2_17_aarch64",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("index")
    for name, tag in {**LOADABLE, **UNLOADABLE}.items():
        _wheel(directory, name, tag)
    return directory


def _pip(index: Path, tmp_path: Path, names: Iterable[str]) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(f"{name}==1.0\n" for name in names))
    cmd = package_layer.pip_install_command(
        requirements, tmp_path / "python", python_version="3.13", platforms=package_layer.lambda_platforms()
    )
    # A local index only: real pip's wheel selection, no network.
    return subprocess.run(  # noqa: S603 - pip with our own arguments
        [*cmd, "--no-index", "--find-links", str(index)], capture_output=True, text=True, check=False
    )


def test_pip_takes_every_wheel_lambda_can_load(index: Path, tmp_path: Path) -> None:
    result = _pip(index, tmp_path, LOADABLE)

    assert result.returncode == 0, result.stderr
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "python").glob("*.dist-info")) == sorted(LOADABLE)
    assert package_layer.unloadable_wheels(tmp_path / "python") == []


def test_the_tags_pip_matches_are_exactly_what_lambda_loads() -> None:
    # One real pip run above shows it takes these tags; starting pip per refusal would cost seconds, so the
    # refusals are checked against the same tag set pip builds from our --platform/--python-version options.
    accepted = package_layer.lambda_tags()
    for name, tag in LOADABLE.items():
        assert accepted & parse_tag(tag), name
    for name, tag in UNLOADABLE.items():
        assert not accepted & parse_tag(tag), name


def test_a_wheel_lambda_cannot_load_fails_the_build(tmp_path: Path, requirements: Path) -> None:
    def pip(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        site = Path(cmd[cmd.index("--target") + 1])
        _write(site / "fast/__init__.py")
        _write(site / "fast-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nTag: cp313-cp313-linux_x86_64\n")
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    with pytest.raises(LayerBuildError, match=r"fast-1\.0.*cp313-cp313-linux_x86_64"):
        build_layer(requirements, tmp_path / "layer.zip", runner=pip)
    assert not (tmp_path / "layer.zip").exists()

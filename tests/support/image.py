"""The operator's image, built from the repository's Dockerfile by hack/build-image.sh (buildah
on a Debian base, no Docker engine; cached on its inputs), and read back from the
docker-archive the script writes: its manifest, its config, the filesystem its layers add up
to, and a command run in a container of it."""

from __future__ import annotations

import json
import os
import posixpath
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-image.sh"
# A cold build (the Debian base, then the Dockerfile) takes about two minutes on two busy
# cores; a build with unchanged inputs returns at once.
BUILD_TIMEOUT = 900


class ImageError(RuntimeError):
    """Building the image or starting a container of it failed; the message says why."""


@dataclass(frozen=True)
class BuiltImage:
    archive: Path  # a docker-archive, as `ctr -n k8s.io images import` takes it
    reference: str  # docker.io/library/syncjob-operator:TAG, the name the archive carries


def build_image(tag: str | None = None) -> BuiltImage:
    """Runs hack/build-image.sh (as root) and returns what it printed."""
    argv = [str(BUILD_SCRIPT), *(["--tag", tag] if tag is not None else [])]
    # Its own process group: on a timeout, buildah and pip go down with the script.
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        raise ImageError(
            f"{BUILD_SCRIPT.name} still running after {BUILD_TIMEOUT}s:\n{_tail(stderr)}"
        ) from None
    lines = stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 2:
        raise ImageError(
            f"{' '.join(argv)} exited {proc.returncode} printing {stdout!r}:\n{_tail(stderr)}"
        )
    archive, reference = lines
    return BuiltImage(Path(archive), reference)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ImageContents:
    repo_tags: list[str]  # the names the archive gives the image
    config: dict[str, Any]  # the image config's "config": User, Env, Entrypoint, Cmd, ...
    files: dict[str, tarfile.TarInfo]  # the final filesystem, by path without a leading "/"
    texts: dict[str, str]  # the content of the regular files asked for, where they exist


def read_archive(archive: Path, texts: Iterable[str] = ()) -> ImageContents:
    """What a runtime would unpack from a docker-archive: its layers applied in order,
    whiteouts (`.wh.NAME` deletes NAME, `.wh..wh..opq` empties its directory) included."""
    wanted = set(texts)
    files: dict[str, tarfile.TarInfo] = {}
    contents: dict[str, bytes] = {}
    with tarfile.open(archive) as outer:
        (manifest,) = json.loads(_file(outer, "manifest.json").read())
        config = json.loads(_file(outer, manifest["Config"]).read())
        for layer in manifest["Layers"]:
            added: dict[str, tarfile.TarInfo] = {}
            added_contents: dict[str, bytes] = {}
            gone: list[str] = []  # paths deleted, with everything under them
            emptied: list[str] = []  # directories whose lower contents are hidden
            with tarfile.open(fileobj=_file(outer, layer), mode="r|") as tar:
                for member in tar:
                    path = posixpath.normpath(member.name.lstrip("/"))
                    parent, name = posixpath.split(path)
                    if name == ".wh..wh..opq":
                        emptied.append(parent)
                    elif name.startswith(".wh."):
                        gone.append(posixpath.join(parent, name.removeprefix(".wh.")))
                    elif path != ".":
                        added[path] = member
                        if path in wanted and member.isfile():
                            added_contents[path] = _file(tar, member).read()
            # A layer's whiteouts hide what the layers below hold; then its own entries apply.
            for tree in (files, contents):
                for key in [k for k in tree if k in added or _hidden(k, gone, emptied)]:
                    del tree[key]
            files.update(added)
            contents.update(added_contents)
    return ImageContents(
        repo_tags=manifest["RepoTags"],
        config=config["config"],
        files=files,
        texts={path: data.decode() for path, data in contents.items()},
    )


def _hidden(path: str, gone: list[str], emptied: list[str]) -> bool:
    return any(path == g or path.startswith(f"{g}/") for g in gone) or any(
        path.startswith(f"{d}/") for d in emptied
    )


def _file(tar: tarfile.TarFile, member: str | tarfile.TarInfo) -> IO[bytes]:
    data = tar.extractfile(member)
    if data is None:
        raise ImageError(f"{member} is not a regular file in the archive")
    return data


def run_in_image(
    image: BuiltImage, argv: list[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`argv` in a container of the image, as the image's user with its environment: the
    archive imported into a throwaway buildah storage (vfs: no mounts to leave behind) and run
    with chroot isolation. No daemon, no Docker engine; needs root."""
    with tempfile.TemporaryDirectory(prefix="syncjob-image-run-") as tmp:
        buildah = ["buildah", "--root", f"{tmp}/storage", "--runroot", f"{tmp}/run"]
        buildah += ["--storage-driver", "vfs"]
        source = f"docker-archive:{image.archive}"
        created = subprocess.run(
            [*buildah, "from", "--quiet", "--pull-never", source],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if created.returncode != 0:
            raise ImageError(
                f"buildah from {source} exited {created.returncode}:\n{_tail(created.stderr)}"
            )
        container = created.stdout.strip()
        try:
            return subprocess.run(
                [*buildah, "run", "--isolation", "chroot", container, "--", *argv],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        finally:
            subprocess.run([*buildah, "rm", container], capture_output=True, timeout=60)

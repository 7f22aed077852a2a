"""Write a docker-archive (the `docker save` format) with the
standard library: what `docker load` and `skopeo copy docker-archive:`
read.

Layout: ``manifest.json``, ``repositories``, ``<config sha256>.json`` and
``<layer id>/layer.tar`` (+ ``VERSION``, ``json``).
"""

import dataclasses
import datetime
import hashlib
import io
import json
import pathlib
import tarfile
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from trovestack.common import files


@dataclasses.dataclass
class ImageConfig:
    """The runtime settings stored in the image config."""

    entrypoint: list
    cmd: list
    env: dict
    user: str = ''
    working_dir: str = '/'
    exposed_ports: tuple = ()
    volumes: tuple = ()
    stop_signal: str = ''
    labels: dict = dataclasses.field(default_factory=dict)
    architecture: str = 'amd64'

    def as_docker_config(self) -> dict[str, Any]:
        config = {
            'Entrypoint': list(self.entrypoint),
            'Cmd': list(self.cmd),
            'Env': [f'{key}={value}' for key, value in self.env.items()],
            'User': self.user,
            'WorkingDir': self.working_dir,
            'ExposedPorts': {port: {} for port in self.exposed_ports},
            'Volumes': {path: {} for path in self.volumes},
            'Labels': dict(self.labels),
        }
        if self.stop_signal:
            config['StopSignal'] = self.stop_signal
        return config


def image_config_json(config: ImageConfig, diff_ids: Sequence[str],
                      created: str, created_by: str) -> bytes:
    """The image config document (JSON bytes) of the layers diff_ids."""
    document = {
        'architecture': config.architecture,
        'os': 'linux',
        'created': created,
        'config': config.as_docker_config(),
        'rootfs': {'type': 'layers', 'diff_ids': list(diff_ids)},
        'history': [{'created': created, 'created_by': created_by}
                    for _ in diff_ids],
    }
    return json.dumps(document, sort_keys=True, separators=(',', ':')
                      ).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes,
               mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = mtime
    tar.addfile(info)


def write_layer(path: pathlib.Path | str,
                files_map: Mapping[str, tuple[pathlib.Path | str, int]],
                directories: Iterable[tuple[str, int]], uid: int,
                mtime: int = 0) -> pathlib.Path | str:
    """Write a small layer tar: files {image path: (source, mode)} owned
    by root, and directories ((path, mode), ...) owned by uid:uid."""
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tar:
        for image_path, mode in directories:
            info = tarfile.TarInfo('./' + image_path.strip('/'))
            info.type = tarfile.DIRTYPE
            info.mode = mode
            info.uid = info.gid = uid
            info.mtime = mtime
            tar.addfile(info)
        for image_path, (source, mode) in sorted(files_map.items()):
            data = pathlib.Path(source).read_bytes()
            info = tarfile.TarInfo('./' + image_path.strip('/'))
            info.size = len(data)
            info.mode = mode
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    return path


def write_docker_archive(layer_tars: Sequence[pathlib.Path | str],
                         output: pathlib.Path | str, repository: str, tag: str,
                         config: ImageConfig, *,
                         created: datetime.datetime | None = None,
                         created_by: str = 'trovestack') -> str:
    """Write a docker-archive at output whose layers are the uncompressed
    tars ``layer_tars`` (bottom first), tagged repository:tag.

    Written to a temporary file beside output and renamed into place, so
    output is either the old archive or the complete new one.  Returns the
    image id (sha256 of the config).
    """
    layer_shas = [files.file_sha256(layer) for layer in layer_tars]
    diff_ids = [f'sha256:{sha}' for sha in layer_shas]
    now = created or datetime.datetime.now(datetime.timezone.utc)
    created_text = now.strftime('%Y-%m-%dT%H:%M:%SZ')
    mtime = int(now.timestamp())
    config_bytes = image_config_json(config, diff_ids, created_text,
                                     created_by)
    config_sha = hashlib.sha256(config_bytes).hexdigest()
    layer_ids = layer_shas
    manifest = [{'Config': f'{config_sha}.json',
                 'RepoTags': [f'{repository}:{tag}'],
                 'Layers': [f'{layer_id}/layer.tar'
                            for layer_id in layer_ids]}]
    repositories = {repository: {tag: layer_ids[-1]}}

    with files.atomic_output(output, mode=0o644) as tmp:
        with tarfile.open(tmp, 'w', format=tarfile.PAX_FORMAT) as tar:
            parent = None
            for layer_id, layer_tar in zip(layer_ids, layer_tars,
                                           strict=True):
                legacy_json = {'id': layer_id, 'created': created_text,
                               'os': 'linux',
                               'architecture': config.architecture}
                if parent:
                    legacy_json['parent'] = parent
                parent = layer_id
                _add_dir(tar, layer_id, mtime)
                _add_bytes(tar, f'{layer_id}/VERSION', b'1.0', mtime)
                _add_bytes(tar, f'{layer_id}/json',
                           json.dumps(legacy_json).encode(), mtime)
                info = tar.gettarinfo(layer_tar,
                                      arcname=f'{layer_id}/layer.tar')
                info.uid = info.gid = 0
                info.uname = info.gname = ''
                info.mtime = mtime
                with open(layer_tar, 'rb') as layer:
                    tar.addfile(info, layer)
            _add_bytes(tar, f'{config_sha}.json', config_bytes, mtime)
            _add_bytes(tar, 'manifest.json', json.dumps(manifest).encode(),
                       mtime)
            _add_bytes(tar, 'repositories',
                       json.dumps(repositories).encode(), mtime)
    return f'sha256:{config_sha}'


def read_manifest(archive: pathlib.Path | str) -> list[dict[str, Any]]:
    """The manifest.json entries of a docker-archive."""
    with tarfile.open(archive) as tar:
        # a docker-archive's members are files: extractfile() gives them
        return json.load(
            tar.extractfile('manifest.json'))  # type: ignore[arg-type]


def read_config(archive: pathlib.Path | str) -> dict[str, Any]:
    """The image config document of a single-image docker-archive."""
    with tarfile.open(archive) as tar:
        manifest = json.load(
            tar.extractfile('manifest.json'))  # type: ignore[arg-type]
        return json.load(
            tar.extractfile(manifest[0]['Config']))  # type: ignore[arg-type]


def image_id(archive: pathlib.Path | str) -> str:
    """The image id of a single-image docker-archive: its config's
    digest (what a registry's manifest names as its config)."""
    name = read_manifest(archive)[0]['Config']
    return 'sha256:' + pathlib.PurePosixPath(name).name.removesuffix('.json')

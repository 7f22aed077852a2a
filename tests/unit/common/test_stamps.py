"""The records kept beside built files (trovestack.common.stamps)."""

import os
import shutil

from trovestack.common import stamps


def _built(tmp_path, content=b'image'):
    artifact = tmp_path / 'image.qcow2'
    artifact.write_bytes(content)
    return artifact


def test_a_written_record_is_fresh_for_its_key(tmp_path):
    artifact = _built(tmp_path)
    record = stamps.write(artifact, '.build.json', {'build_hash': 'abc'})
    assert record['size'] == 5 and record['mtime_ns']
    assert stamps.read(artifact, '.build.json') == record
    assert stamps.fresh(artifact, '.build.json', 'build_hash', 'abc') == (
        record)
    assert stamps.fresh(artifact, '.build.json', 'build_hash', 'def') is None
    assert stamps.fresh(artifact, '.other.json', 'build_hash', 'abc') is None


def test_a_file_written_since_is_not_fresh(tmp_path):
    artifact = _built(tmp_path)
    stamps.write(artifact, '.inputs.json', {'inputs_hash': 'h'})
    st = artifact.stat()
    artifact.write_bytes(b'other')  # same size, new mtime
    os.utime(artifact, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert stamps.fresh(artifact, '.inputs.json', 'inputs_hash', 'h') is None


def test_a_copy_with_its_mtime_kept_is_the_same_file(tmp_path):
    artifact = _built(tmp_path)
    stamps.write(artifact, '.inputs.json', {'inputs_hash': 'h'})
    copy = tmp_path / 'copy.qcow2'
    for suffix in ('', '.inputs.json'):
        shutil.copy2(f'{artifact}{suffix}', f'{copy}{suffix}')
    assert stamps.fresh(copy, '.inputs.json', 'inputs_hash', 'h')


def test_missing_or_broken_records_and_files(tmp_path):
    artifact = _built(tmp_path)
    assert stamps.read(artifact, '.build.json') is None
    stamps.path(artifact, '.build.json').write_text('{not json')
    assert stamps.read(artifact, '.build.json') is None
    stamps.write(artifact, '.build.json', {'build_hash': 'abc'})
    artifact.unlink()
    assert stamps.fresh(artifact, '.build.json', 'build_hash', 'abc') is None
    assert not stamps.describes(None, artifact)

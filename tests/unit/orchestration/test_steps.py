"""trovestack.orchestration.steps: the runner (a step beside the others,
the steps that need it) and the shared summary; the steps themselves run
against the real cloud in tests/integration/test_provision.py and
test_devstack_plugin.py."""

import threading

import pytest

from trovestack.common import results
from trovestack.orchestration import steps


def _step(name, seen, *, beside=False, needs=(), fail=False, wait=None,
          then=None):
    def run(context):
        if wait is not None:
            assert wait.wait(5)
        seen.append((name, threading.current_thread().name))
        if then is not None:
            then.set()
        if fail:
            raise RuntimeError(name)
        return [results.Row(name, name, results.OK)]
    return steps.Step(name, '', run, beside=beside, needs=needs)


def test_a_step_beside_runs_in_its_thread_before_the_step_needing_it():
    seen = []
    released = threading.Event()
    # 'flavors' waits until 'load' has run: it can only finish when the
    # steps before 'config' run beside it.
    plan = [_step('image', seen),
            _step('flavors', seen, beside=True, wait=released),
            _step('load', seen, then=released),
            _step('config', seen, needs=('flavors',))]
    done = steps.run_each(plan, steps.Context())
    assert [step.name for step, _ in done] == ['image', 'flavors', 'load',
                                               'config']
    names = [name for name, _ in seen]
    assert names.index('flavors') < names.index('config')
    threads = dict(seen)
    assert threads['flavors'] != threads['image'] == threads['config']
    assert [row.kind for row in steps.run(plan, steps.Context())] == [
        'image', 'flavors', 'load', 'config']


def test_a_failing_step_waits_for_the_one_beside_it():
    seen = []
    plan = [_step('flavors', seen, beside=True),
            _step('load', seen, fail=True),
            _step('config', seen, needs=('flavors',))]
    with pytest.raises(RuntimeError, match='load'):
        steps.run_each(plan, steps.Context())
    assert sorted(name for name, _ in seen) == ['flavors', 'load']


def test_summary_counts_each_action():
    rows = [results.Row('config', 'a', results.UNCHANGED),
            results.Row('config', 'b', results.UPDATED),
            results.Row('config', 'c', results.UNCHANGED)]
    assert steps.summary('trove-config', rows) == results.Row(
        'trove-config', '3 items', '2 unchanged, 1 updated')
    assert steps.summary('x', []).action == 'nothing to do'


@pytest.mark.parametrize('path, name', [
    ('/i/trove-guest-debian-bookworm-mariadb-11.8.qcow2',
     'trove-guest-debian-bookworm-mariadb-11.8'),
    ('trove-guest-mariadb-11.4.qcow2', 'trove-guest-mariadb-11.4'),
    ('guest.raw.gz', 'guest'),
    ('guest-v1.2', 'guest-v1.2'),
])
def test_image_name_keeps_a_versions_dots(path, name):
    assert steps.image_name(path) == name

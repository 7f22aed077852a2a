import subprocess
import sys

from trovestack.images.guest import guest_agent


def test_requirement_file_matches_the_generator():
    generated = subprocess.run(
        [sys.executable, '-m', 'trovestack.images.guest.guest_requirements'],
        check=True, capture_output=True, text=True).stdout
    assert generated == guest_agent.REQUIREMENTS.read_text(), (
        'regenerate data/guest-agent-requirements.txt with '
        'python -m trovestack.images.guest.guest_requirements')


def test_api_side_requirements_stay_out_of_the_guest():
    pinned = {line.split('==')[0].lower()
              for line in guest_agent.REQUIREMENTS.read_text().splitlines()
              if line and not line.startswith('#')}
    assert {'oslo.messaging', 'docker', 'pymysql'} <= pinned
    assert not {'trove', 'oslo.policy', 'python-troveclient',
                'python-openstackclient'} & pinned

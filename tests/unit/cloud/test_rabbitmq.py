"""trovestack.cloud.rabbitmq without a running broker."""

import json

import pytest

from trovestack.cloud import rabbitmq


def broker(**changes):
    fields = dict(host='127.0.0.1', port=5672, user='trove',
                  password='p@ss/word', vhost='trove', data_dir='/d')
    fields.update(changes)
    return rabbitmq.Broker(**fields)


def test_transport_url_quotes_credentials_and_vhost():
    assert broker().transport_url() == \
        'rabbit://trove:p%40ss%2Fword@127.0.0.1:5672/trove'
    assert broker(host='::1', vhost='/').transport_url() == \
        'rabbit://trove:p%40ss%2Fword@[::1]:5672/%2F'


def test_repr_hides_the_password():
    assert 'p@ss' not in repr(broker())
    assert 'p@ss' not in repr(rabbitmq._Record(
        '127.0.0.1', 1, 'u', 'p@ss', 'v', 2, 3))


def test_config_binds_one_address_and_replaces_guest():
    text = rabbitmq.render_config('10.0.0.1', 5673, 'trove', 'pw', 'tv')
    lines = text.splitlines()
    assert 'listeners.tcp.1 = 10.0.0.1:5673' in lines
    assert not any(line.startswith('listeners.tcp.default')
                   for line in lines)
    assert {'default_user = trove', 'default_pass = pw',
            'default_vhost = tv'} <= set(lines)


def test_environment_is_all_ours(tmp_path):
    paths = rabbitmq._Paths(tmp_path)
    record = rabbitmq._Record('127.0.0.1', 1, 'u', 'pw', 'v', 4369, 25672)
    env = rabbitmq.server_env(paths, record)
    assert env['HOME'] == str(tmp_path)
    assert env["RUNNING_UNDER_SYSTEMD"] == "true"
    assert env['ERL_EPMD_PORT'] == '4369'
    assert env['RABBITMQ_DIST_PORT'] == '25672'
    assert env['RABBITMQ_NODENAME'].endswith('@localhost')
    for key in ('RABBITMQ_MNESIA_BASE', 'RABBITMQ_LOG_BASE',
                'RABBITMQ_CONFIG_FILE', 'RABBITMQ_CONF_ENV_FILE'):
        assert env[key].startswith(str(tmp_path))
    assert 'pw' not in json.dumps(env)
    other = rabbitmq.server_env(rabbitmq._Paths(tmp_path / 'x'), record)
    assert other['RABBITMQ_NODENAME'] != env['RABBITMQ_NODENAME']


def test_new_record_keeps_the_password_and_refuses_another_user(tmp_path):
    paths = rabbitmq._Paths(tmp_path)
    first = rabbitmq._new_record(paths, None, '127.0.0.1', 5672, 'trove',
                                 'trove', None)
    assert len(first.password) >= 24
    assert 5672 not in (first.epmd_port, first.dist_port)
    again = rabbitmq._new_record(paths, first, '127.0.0.1', 5673, 'trove',
                                 'trove', None)
    assert again.password == first.password
    paths.mnesia.mkdir()
    with pytest.raises(rabbitmq.BrokerError, match="user 'trove'"):
        rabbitmq._new_record(paths, first, '127.0.0.1', 5672, 'nova',
                             'trove', None)


def test_lost_password_starts_a_fresh_database(tmp_path):
    paths = rabbitmq._Paths(tmp_path)
    paths.mnesia.mkdir()
    rabbitmq._new_record(paths, None, '127.0.0.1', 5672, 'trove', 'trove',
                         None)
    assert not paths.mnesia.exists()


def test_missing_server_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(rabbitmq, 'SERVER', tmp_path / 'no-such-server')
    with pytest.raises(rabbitmq.BrokerError, match='apt|rabbitmq-server'):
        rabbitmq.start(tmp_path / 'broker', port=1)


def test_stop_and_is_running_without_a_broker(tmp_path):
    assert rabbitmq.is_running(tmp_path) is False
    assert rabbitmq.stop(tmp_path) is False

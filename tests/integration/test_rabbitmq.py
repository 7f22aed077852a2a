"""A real RabbitMQ broker from trovestack.cloud.rabbitmq, used with
oslo.messaging the way Trove's services use it."""

import concurrent.futures
import pathlib
import socket

import kombu
import oslo_messaging as messaging
import pytest
from oslo_config import cfg

from trovestack.cloud import processes
from trovestack.cloud import rabbitmq
from trovestack.cloud import supervision

pytestmark = pytest.mark.skipif(
    not rabbitmq.SERVER.exists(),
    reason='rabbitmq-server is not installed (tools/install-test-deps)')


def broker_processes(data_dir):
    """Pids of live processes that belong to the broker of data_dir (its
    own supervisor's)."""
    return [proc.pid for proc in supervision.owned_processes(
        pathlib.Path(data_dir).absolute())]


@pytest.fixture(scope='module')
def two_brokers(tmp_path_factory):
    """Two brokers on free ports, started at the same time."""
    dirs = [tmp_path_factory.mktemp(f'broker{i}') for i in range(2)]
    ports = [processes.free_port() for _ in dirs]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            brokers = list(pool.map(
                lambda data_dir, port: rabbitmq.start(data_dir, port=port),
                dirs, ports))
        yield brokers
    finally:
        for data_dir in dirs:
            rabbitmq.stop(data_dir)


class Echo:
    def echo(self, ctxt, value):
        return {'value': value, 'server': ctxt.get('server')}


def _round_trip(broker, topic='trovestack-test'):
    """An oslo.messaging RPC call through the broker; returns the answer."""
    # oslo.messaging registers some of its options on the global CONF only.
    transport = messaging.get_rpc_transport(cfg.CONF,
                                            url=broker.transport_url())
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server='here'), [Echo()],
        executor='threading')
    server.start()
    try:
        client = messaging.get_rpc_client(
            transport, messaging.Target(topic=topic), timeout=30)
        return client.call({'server': str(broker.port)}, 'echo',
                           value='ping')
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_rpc_round_trip_on_each_broker(two_brokers):
    for broker in two_brokers:
        assert _round_trip(broker) == {'value': 'ping',
                                       'server': str(broker.port)}


def test_only_our_user_and_vhost_exist(two_brokers):
    broker = two_brokers[0]
    for user, password, vhost in (('guest', 'guest', '/'),
                                  (broker.user, 'wrong', broker.vhost)):
        conn = kombu.Connection(f'amqp://{user}:{password}@{broker.host}:'
                                f'{broker.port}/{vhost}', connect_timeout=5)
        with pytest.raises(Exception, match='ACCESS_REFUSED'):
            conn.connect()
        conn.release()


def test_password_is_private_and_never_logged(two_brokers):
    broker = two_brokers[0]
    data_dir = pathlib.Path(broker.data_dir)
    assert (data_dir / rabbitmq.STATE_FILE).stat().st_mode & 0o077 == 0
    assert (data_dir / 'rabbitmq.conf').stat().st_mode & 0o077 == 0
    assert broker.password not in repr(broker)
    for log in (data_dir / 'log').iterdir():
        assert broker.password not in log.read_text(errors='replace')


def test_list_queues_counts_waiting_messages_and_consumers(two_brokers):
    """A queue nobody consumes, with a message in it, as a hung guest
    agent's would be; the other broker's queues are not listed."""
    broker = two_brokers[0]
    with kombu.Connection(broker.transport_url().replace('rabbit://',
                                                         'amqp://')) as conn:
        queue = kombu.Queue('guestagent.test', routing_key='guestagent.test',
                            durable=False, auto_delete=False)
        conn.SimpleQueue(queue).put({'method': 'list_users'})
    listed = {name: (messages, consumers) for name, messages, consumers
              in rabbitmq.list_queues(broker.data_dir)}
    assert listed['guestagent.test'] == (1, 0)
    assert 'guestagent.test' not in {
        name for name, _, _ in rabbitmq.list_queues(two_brokers[1].data_dir)}


def test_list_queues_of_no_broker_is_an_error(tmp_path):
    with pytest.raises(rabbitmq.BrokerError, match='no running broker'):
        rabbitmq.list_queues(tmp_path)


def test_start_again_returns_the_running_broker(two_brokers):
    broker = two_brokers[1]
    before = sorted(broker_processes(broker.data_dir))
    again = rabbitmq.start(broker.data_dir, port=broker.port)
    assert again == broker
    assert sorted(broker_processes(broker.data_dir)) == before
    assert rabbitmq.is_running(broker.data_dir)


def test_stop_leaves_nothing_running_and_restart_keeps_password(tmp_path):
    data_dir = tmp_path / 'broker'
    broker = rabbitmq.start(data_dir, port=processes.free_port())
    assert broker_processes(data_dir)
    assert rabbitmq.stop(data_dir) is True
    assert broker_processes(data_dir) == []
    assert not rabbitmq.is_running(data_dir)
    assert rabbitmq.stop(data_dir) is False

    again = rabbitmq.start(data_dir, port=processes.free_port())
    try:
        assert again.password == broker.password
        assert _round_trip(again)['value'] == 'ping'
    finally:
        rabbitmq.stop(data_dir)
    assert broker_processes(data_dir) == []


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(rabbitmq.BrokerError,
                           match=f'port {port} .rabbitmq. on 127.0.0.1 is '
                                 f'in use'):
            rabbitmq.start(tmp_path, port=port)
    assert broker_processes(tmp_path) == []

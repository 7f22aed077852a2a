"""Unit tests of orchestration.testconfig: what it reads the cloud with."""

from unittest import mock

from load_image import trove_api
from tests.unit.testenv import fakes
from trovestack.common import connection
from trovestack.orchestration import testconfig


def test_trovestack_connection_reads_trove_without_troveclient():
    conn = connection.Connection.__new__(connection.Connection)
    conn.config, conn.session = mock.Mock(), mock.Mock()
    conn._rest_apis = {}
    conn.config.get_session_client.return_value = mock.Mock(
        endpoint_override='http://trove/v1.0/%(project_id)s')
    with mock.patch.object(connection, 'trove_client') as trove_client:
        reader = testconfig._datastore_reader(conn)
    assert isinstance(reader, trove_api.DatastoreClient)
    trove_client.assert_not_called()


def test_other_connections_read_trove_through_troveclient():
    conn = fakes.connection()
    with mock.patch.object(connection, 'trove_client') as trove_client:
        assert testconfig._datastore_reader(conn) is trove_client.return_value

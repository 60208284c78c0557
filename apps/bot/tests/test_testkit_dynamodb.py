"""DynamoDB Local from the test kit: starts, answers the real SDK, stops (refusing), comes back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import EndpointConnectionError
from mcstatbot_testkit.dynamodb import DynamoDBLocal

if TYPE_CHECKING:
    from pathlib import Path


async def _tables(ddb: DynamoDBLocal) -> list[str]:
    config = AioConfig(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=20)
    client_context = get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=ddb.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - DynamoDB Local accepts any credentials
        config=config,
    )
    async with client_context as client:
        await client.create_table(
            TableName="things",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return list((await client.list_tables())["TableNames"])


async def test_start_stop_restart(tmp_path: Path) -> None:
    ddb = DynamoDBLocal(tmp_path / "ddb.log")
    with ddb:
        assert ddb.env()["AWS_ENDPOINT_URL_DYNAMODB"] == ddb.endpoint_url
        assert await _tables(ddb) == ["things"]
        port = ddb.port
        ddb.stop()
        assert not ddb.running
        with pytest.raises(EndpointConnectionError):
            await _tables(ddb)
        ddb.start()
        assert ddb.port == port
        assert await _tables(ddb) == ["things"]  # in-memory: the table is new again
    assert not ddb.running

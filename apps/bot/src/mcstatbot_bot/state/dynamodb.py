"""The DynamoDB backend (aiodynamo, on httpx): the `user_sessions` table of SPEC.md, shared by every replica.

All item kinds live in the one table, told apart by the partition key `chat_id` (S):

- `"<chat id>"`: a chat: `last_url` (S), `edition` (S), `last_query_time` (S, ISO 8601 UTC),
  `server_data` (M, the last ServerStatus), `ttl` (N, epoch seconds, 7 days ahead);
- `"server#<edition>|<address>"`: the last ServerStatus of a server (`server_data`, `stored_at`, `ttl`);
- `"settings#<chat id>"`: a chat's settings: `language` (S), `default_url` (S) and `default_edition` (S),
  each only when set; no `ttl` (kept until changed);
- `"ref#<id>"`: a button reference (`address`, `edition`, `ttl` about a year ahead);
- `"update#<bot id>:<update_id>"`: an update claim (`status` processing|done, `lease_until` N, `ttl` a
  day ahead), taken with a conditional put so only one replica of that bot handles an update;
- `"history#<edition>|<address>#<YYYY-MM-DD>"`: a watched server's history samples of one UTC day,
  `s` (L of S, one compact string per sample, appended with UpdateItem's `list_append`), `ttl` (N: the
  day's end plus HISTORY_DAYS); at most HISTORY_ITEM_CAP samples per item (bounded far below 400 KB);
- documents (`watches#...`, `watch#...`, `check#...`, `watching`, docs/bot-service.md): `doc` (S, JSON)
  and `version` (N), written with a condition on the version (compare-and-set), no TTL.

Every call is DynamoDB's JSON API as the AWS docs write it (`send(action, payload)`), signed and retried
by aiodynamo. Region, endpoint (`AWS_ENDPOINT_URL_DYNAMODB`) and credentials (IRSA in the cluster) come from
the AWS SDKs' variables and chain (`state/aws.py`). Retries are aiodynamo's, on the SDKs' standard schedule
(`retries + 1` attempts, exponential backoff with full jitter), each counted in
`mcstatbot_state_store_retries_total` under the ResilientStore operation it belongs to. Each call is a
client span `DynamoDB.<action>` (with the httpx span of its request below it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from aiodynamo.client import Client
from aiodynamo.errors import ConditionalCheckFailed, ResourceInUse
from aiodynamo.http.httpx import HTTPX
from mcstatbot_common.models import Edition, ServerStatus
from opentelemetry import trace

from mcstatbot_bot import metrics
from mcstatbot_bot.clients import tls_context
from mcstatbot_bot.state.aws import StandardRetry, credentials, endpoint, region
from mcstatbot_bot.state.base import (
    CHAT_TTL,
    REF_TTL,
    SERVER_TTL,
    UPDATE_TTL,
    ChatSettings,
    ChatState,
    ClaimResult,
    Doc,
    Sample,
    ServerRef,
    StoredServer,
    Versioned,
    claim_key,
    iso,
    parse_iso,
    utc_now,
)
from mcstatbot_bot.state.resilient import CURRENT_OPERATION

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import timedelta

AttributeValueTypeDef = dict[str, Any]
"""One DynamoDB attribute value in the JSON API's form: `{"S": "..."}`, `{"N": "1"}`, `{"M": {...}}`..."""
_tracer = trace.get_tracer("mcstatbot.dynamodb")


def to_attribute(value: Any) -> AttributeValueTypeDef:
    """A JSON-like value as a DynamoDB attribute (numbers travel as strings: no float/Decimal issue)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": json.dumps(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    if "NULL" in attribute:
        return None
    if "BOOL" in attribute:
        return attribute["BOOL"]
    if "N" in attribute:
        number = attribute["N"]
        return int(number) if number.lstrip("-").isdigit() else float(number)
    if "S" in attribute:
        return attribute["S"]
    if "M" in attribute:
        return {k: from_attribute(v) for k, v in attribute["M"].items()}
    if "L" in attribute:
        return [from_attribute(v) for v in attribute["L"]]
    raise TypeError(f"unsupported DynamoDB attribute {sorted(attribute)}")


DAY = 86400
HISTORY_ITEM_CAP = 17_280
"""Samples per history item (one UTC day): one every 5 s; a shorter WATCH_INTERVAL_SECONDS loses the
rest of the day's samples rather than outgrow DynamoDB's 400 KB item (17,280 x ~22 bytes: ~380 KB)."""


def history_key(server: ServerRef, day: int) -> str:
    """The history item of `server` for the UTC day `day` (epoch seconds // 86400)."""
    return f"history#{server.key}#{datetime.fromtimestamp(day * DAY, UTC):%Y-%m-%d}"


def encode_sample(sample: Sample) -> str:
    """`<second of the day>` offline; `<second>,<players>,<max>,<latency ms, 0.1>` online (empty
    fields for what the server did not say): about 15 bytes."""
    second = str(sample.at % DAY)
    if not sample.online:
        return second
    latency = "" if sample.latency_ms is None else f"{sample.latency_ms:.1f}".removesuffix(".0")
    players = "" if sample.players is None else str(sample.players)
    most = "" if sample.max_players is None else str(sample.max_players)
    return f"{second},{players},{most},{latency}"


def decode_sample(day: int, text: str) -> Sample:
    fields = text.split(",")
    at = day * DAY + int(fields[0])
    if len(fields) == 1:
        return Sample(at, online=False)
    players, most, latency = [*fields[1:], "", "", ""][:3]
    return Sample(
        at,
        online=True,
        players=int(players) if players else None,
        max_players=int(most) if most else None,
        latency_ms=float(latency) if latency else None,
    )


def _ttl(delta: timedelta) -> AttributeValueTypeDef:
    return {"N": str(int(time.time() + delta.total_seconds()))}


def _status_map(status: ServerStatus) -> AttributeValueTypeDef:
    return to_attribute(status.model_dump(mode="json"))


BATCH_GET_KEYS = 100
"""Keys per BatchGetItem: DynamoDB's own limit."""
UNPROCESSED_ATTEMPTS = 8
"""BatchGetItem calls for one batch of keys before the keys DynamoDB keeps leaving unprocessed fail it."""


class IncompleteBatchError(Exception):
    """DynamoDB kept leaving keys of a BatchGetItem unprocessed."""


async def _open_client(request_timeout: float, retries: int) -> tuple[Client, httpx.AsyncClient]:
    """An aiodynamo client on its own httpx pool: `request_timeout` per request, `retries` on the standard
    schedule."""
    where = region()  # before the pool: a missing region leaves nothing open behind it
    chain = await asyncio.to_thread(credentials)  # reads ~/.aws/credentials and the like
    http = httpx.AsyncClient(
        timeout=request_timeout, limits=httpx.Limits(max_connections=50), verify=tls_context()
    )
    client = Client(
        HTTPX(http), chain, where, endpoint("dynamodb"), throttle_config=StandardRetry(retries=retries)
    )
    return client, http


async def _send(client: Client, table: str, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    with _tracer.start_as_current_span(
        f"DynamoDB.{action}",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": action,
            "aws.dynamodb.table_names": [table],
        },
    ):
        return await client.send_request(action=action, payload=payload)


class DynamoDBStore:
    backend = "dynamodb"

    def __init__(self, table: str, *, timeout: float = 2.0, bot_id: str = "", retries: int = 3) -> None:
        self.table = table
        self.bot_id = bot_id
        self._retries = retries
        self._timeout = timeout
        self._client: Client | None = None
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client, self._http = await _open_client(self._timeout, self._retries)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        self._client = self._http = None

    async def send(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One DynamoDB API call (`PutItem`, {"TableName": ..., "Item": ...}), retried as StandardRetry
        says; aiodynamo's errors (ConditionalCheckFailed, ...) raised as they are."""
        if self._client is None:
            raise RuntimeError("the DynamoDB store is not open")
        return await _send(self._client, self.table, action, payload)

    async def ping(self) -> None:
        """DescribeTable within one request's timeout: readiness is a quick question, the retries (with
        their backoff) are for the calls an update needs."""
        async with asyncio.timeout(self._timeout):
            await self.send("DescribeTable", {"TableName": self.table})

    async def _get(self, key: str) -> dict[str, Any] | None:
        response = await self.send(
            "GetItem", {"TableName": self.table, "Key": {"chat_id": {"S": key}}, "ConsistentRead": True}
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    async def get_chat(self, chat_id: int) -> ChatState | None:
        item = await self._get(str(chat_id))
        if item is None or "last_url" not in item:
            return None
        data = item.get("server_data")
        status = ServerStatus.model_validate(from_attribute(data)) if data and "M" in data else None
        edition = Edition(item["edition"]["S"]) if "edition" in item else Edition.AUTO
        return ChatState(
            chat_id,
            ServerRef(item["last_url"]["S"], edition),
            parse_iso(item["last_query_time"]["S"]),
            status,
        )

    async def save_chat(self, chat_id: int, server: ServerRef, status: ServerStatus | None) -> None:
        item: dict[str, AttributeValueTypeDef] = {
            "chat_id": {"S": str(chat_id)},
            "last_url": {"S": server.address},
            "edition": {"S": server.edition.value},
            "last_query_time": {"S": iso(utc_now())},
            "ttl": _ttl(CHAT_TTL),
        }
        if status is not None:
            item["server_data"] = _status_map(status)
        await self.send("PutItem", {"TableName": self.table, "Item": item})

    async def get_server(self, server: ServerRef) -> StoredServer | None:
        item = await self._get(f"server#{server.key}")
        if item is None:
            return None
        status = ServerStatus.model_validate(from_attribute(item["server_data"]))
        return StoredServer(server, status, parse_iso(item["stored_at"]["S"]))

    async def save_server(self, server: ServerRef, status: ServerStatus) -> None:
        await self.send(
            "PutItem",
            {
                "TableName": self.table,
                "Item": {
                    "chat_id": {"S": f"server#{server.key}"},
                    "server_data": _status_map(status),
                    "stored_at": {"S": iso(utc_now())},
                    "ttl": _ttl(SERVER_TTL),
                },
            },
        )

    async def save_status(self, chat_id: int, server: ServerRef, status: ServerStatus) -> None:
        """Both items written at once (two PutItems in flight: one round trip; no BatchWriteItem, which
        the task role need not be granted)."""
        await asyncio.gather(self.save_server(server, status), self.save_chat(chat_id, server, status))

    async def get_settings(self, chat_id: int) -> ChatSettings | None:
        item = await self._get(f"settings#{chat_id}")
        if item is None:
            return None
        language = item["language"]["S"] if "language" in item else None
        server = None
        if "default_url" in item:
            edition = Edition(item["default_edition"]["S"]) if "default_edition" in item else Edition.AUTO
            server = ServerRef(item["default_url"]["S"], edition)
        return ChatSettings(language, server)

    async def save_settings(self, chat_id: int, settings: ChatSettings) -> None:
        item: dict[str, AttributeValueTypeDef] = {"chat_id": {"S": f"settings#{chat_id}"}}
        if settings.language is not None:
            item["language"] = {"S": settings.language}
        if settings.default_server is not None:
            item["default_url"] = {"S": settings.default_server.address}
            item["default_edition"] = {"S": settings.default_server.edition.value}
        await self.send("PutItem", {"TableName": self.table, "Item": item})

    async def get_ref(self, ref: str) -> ServerRef | None:
        item = await self._get(f"ref#{ref}")
        if item is None:
            return None
        return ServerRef(item["address"]["S"], Edition(item["edition"]["S"]))

    async def put_ref(self, ref: str, server: ServerRef) -> None:
        await self.send(
            "PutItem",
            {
                "TableName": self.table,
                "Item": {
                    "chat_id": {"S": f"ref#{ref}"},
                    "address": {"S": server.address},
                    "edition": {"S": server.edition.value},
                    "ttl": _ttl(REF_TTL),
                },
            },
        )

    def _claim(self, update_id: int) -> str:
        return f"update#{claim_key(self.bot_id, update_id)}"

    async def claim_update(self, update_id: int, lease_seconds: float, token: str) -> ClaimResult:
        now = time.time()
        key = self._claim(update_id)
        try:
            await self.send(
                "PutItem",
                {
                    "TableName": self.table,
                    "Item": {
                        "chat_id": {"S": key},
                        "status": {"S": "processing"},
                        "lease_until": {"N": str(now + lease_seconds)},
                        "owner": {"S": token},
                        "ttl": _ttl(UPDATE_TTL),
                    },
                    # new, or another replica's claim whose lease ran out (it crashed mid-update)
                    "ConditionExpression": (
                        "attribute_not_exists(chat_id) OR "
                        "(#s = :processing AND (lease_until < :now OR #o = :token))"
                    ),
                    "ExpressionAttributeNames": {"#s": "status", "#o": "owner"},
                    "ExpressionAttributeValues": {
                        ":processing": {"S": "processing"},
                        ":now": {"N": str(now)},
                        ":token": {"S": token},
                    },
                },
            )
        except ConditionalCheckFailed:
            item = await self._get(key)
            if item is None:
                return await self.claim_update(update_id, lease_seconds, token)
            return ClaimResult.DUPLICATE if item["status"]["S"] == "done" else ClaimResult.BUSY
        return ClaimResult.CLAIMED

    async def finish_update(self, update_id: int) -> None:
        await self.send(
            "PutItem",
            {
                "TableName": self.table,
                "Item": {
                    "chat_id": {"S": self._claim(update_id)},
                    "status": {"S": "done"},
                    "ttl": _ttl(UPDATE_TTL),
                },
            },
        )

    async def release_update(self, update_id: int) -> None:
        with contextlib.suppress(ConditionalCheckFailed):
            await self.send(
                "DeleteItem",
                {
                    "TableName": self.table,
                    "Key": {"chat_id": {"S": self._claim(update_id)}},
                    "ConditionExpression": "#s = :processing",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":processing": {"S": "processing"}},
                },
            )

    async def get_doc(self, key: str) -> Versioned | None:
        item = await self._get(key)
        if item is None or "doc" not in item:
            return None
        return Versioned(json.loads(item["doc"]["S"]), int(item["version"]["N"]))

    async def get_docs(self, keys: Sequence[str]) -> dict[str, Versioned]:
        """BatchGetItem, strongly consistent, BATCH_GET_KEYS keys per call, the calls all at once."""
        unique = list(dict.fromkeys(keys))
        chunks = [unique[start : start + BATCH_GET_KEYS] for start in range(0, len(unique), BATCH_GET_KEYS)]
        found: dict[str, Versioned] = {}
        for items in await asyncio.gather(*(self._batch_get(chunk) for chunk in chunks)):
            for item in items:
                if "doc" in item:
                    found[item["chat_id"]["S"]] = Versioned(
                        json.loads(item["doc"]["S"]), int(item["version"]["N"])
                    )
        return found

    async def _batch_get(self, keys: list[str]) -> list[dict[str, Any]]:
        """One BatchGetItem of `keys`, and again for the keys it left unprocessed (an answer over 16 MB,
        or throttling: the SDK retries neither), after a backoff with full jitter, each time counted as a
        retry; IncompleteBatchError after UNPROCESSED_ATTEMPTS calls."""
        wanted: list[Mapping[str, AttributeValueTypeDef]] = [{"chat_id": {"S": key}} for key in keys]
        items: list[dict[str, Any]] = []
        for attempt in range(UNPROCESSED_ATTEMPTS):
            if attempt:
                metrics.STATE_RETRIES.labels("dynamodb", CURRENT_OPERATION.get()).inc()
                await asyncio.sleep(random.uniform(0, min(0.05 * 2**attempt, 1.0)))  # noqa: S311 - jitter
            response = await self.send(
                "BatchGetItem", {"RequestItems": {self.table: {"Keys": wanted, "ConsistentRead": True}}}
            )
            items.extend(response.get("Responses", {}).get(self.table, []))
            unprocessed = response.get("UnprocessedKeys", {}).get(self.table)
            wanted = list(unprocessed["Keys"]) if unprocessed else []
            if not wanted:
                return items
        raise IncompleteBatchError(f"{len(wanted)} keys still unprocessed after {UNPROCESSED_ATTEMPTS} calls")

    async def put_doc(self, key: str, doc: Doc, expected: int) -> bool:
        condition = "attribute_not_exists(chat_id)" if expected == 0 else "version = :expected"
        values: dict[str, AttributeValueTypeDef] = (
            {} if expected == 0 else {":expected": {"N": str(expected)}}
        )
        try:
            await self.send(
                "PutItem",
                {
                    "TableName": self.table,
                    "Item": {
                        "chat_id": {"S": key},
                        "doc": {"S": json.dumps(doc, separators=(",", ":"))},
                        "version": {"N": str(expected + 1)},
                    },
                    "ConditionExpression": condition,
                    **({"ExpressionAttributeValues": values} if values else {}),
                },
            )
        except ConditionalCheckFailed:
            return False
        return True

    async def delete_doc(self, key: str, expected: int) -> bool:
        try:
            await self.send(
                "DeleteItem",
                {
                    "TableName": self.table,
                    "Key": {"chat_id": {"S": key}},
                    "ConditionExpression": "version = :expected",
                    "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
                },
            )
        except ConditionalCheckFailed:
            return False
        return True

    async def add_sample(self, server: ServerRef, sample: Sample, keep: timedelta) -> None:
        day = sample.at // DAY
        expires = (day + 1) * DAY + int(keep.total_seconds())
        # a full day's item fails the condition: the sample is dropped (see HISTORY_ITEM_CAP)
        with contextlib.suppress(ConditionalCheckFailed):
            await self.send(
                "UpdateItem",
                {
                    "TableName": self.table,
                    "Key": {"chat_id": {"S": history_key(server, day)}},
                    "UpdateExpression": "SET s = list_append(if_not_exists(s, :none), :new), #t = :ttl",
                    "ConditionExpression": "attribute_not_exists(s) OR size(s) < :cap",
                    "ExpressionAttributeNames": {"#t": "ttl"},
                    "ExpressionAttributeValues": {
                        ":none": {"L": []},
                        ":new": {"L": [{"S": encode_sample(sample)}]},
                        ":ttl": {"N": str(expires)},
                        ":cap": {"N": str(HISTORY_ITEM_CAP)},
                    },
                },
            )

    async def samples(self, server: ServerRef, since: int, until: int) -> list[Sample]:
        """One GetItem per day of the window, all at once (31 for 30 days); a day whose `ttl` has passed
        counts as gone (DynamoDB deletes expired items within days, not at once)."""
        days = range(max(since, 0) // DAY, until // DAY + 1)
        items = await asyncio.gather(*(self._get(history_key(server, day)) for day in days))
        now = time.time()
        found: list[Sample] = []
        for day, item in zip(days, items, strict=True):
            if item is None or "s" not in item or float(item.get("ttl", {}).get("N", "inf")) < now:
                continue
            found.extend(decode_sample(day, value["S"]) for value in item["s"]["L"])
        found.sort(key=lambda sample: sample.at)
        return [sample for sample in found if since <= sample.at <= until]


async def create_table(table: str, *, wait_seconds: float = 60.0) -> bool:
    """Create `table` (partition key chat_id S, on demand) with TTL on `ttl`; False if it existed."""
    client, http = await _open_client(request_timeout=10.0, retries=3)
    async with http:
        try:
            await _send(
                client,
                table,
                "CreateTable",
                {
                    "TableName": table,
                    "KeySchema": [{"AttributeName": "chat_id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "chat_id", "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            )
            created = True
        except ResourceInUse:
            created = False
        async with asyncio.timeout(wait_seconds):
            while True:  # CREATING, then ACTIVE
                described = await _send(client, table, "DescribeTable", {"TableName": table})
                if described["Table"]["TableStatus"] == "ACTIVE":
                    break
                await asyncio.sleep(1)
        ttl = await _send(client, table, "DescribeTimeToLive", {"TableName": table})
        if ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}:
            await _send(
                client,
                table,
                "UpdateTimeToLive",
                {"TableName": table, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "ttl"}},
            )
    return created

"""deploy/cloudformation/mcstatbot.yaml: cfn-lint clean, the table as SPEC.md describes it, and IAM roles
that grant the bot exactly the DynamoDB calls its code makes, on that table only, to its ServiceAccount only.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]  # cfn-lint ships no type information

if TYPE_CHECKING:
    from tests.chart.conftest import Kit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "mcstatbot.yaml"
BOT_SOURCES = ROOT / "apps" / "bot" / "src"
# DynamoDB calls that only `mcstatbot-bot create-table` makes (DynamoDB Local on kind); on AWS the table
# comes from this template, so the bot's role does not get them.
LOCAL_ONLY_CALLS = {"CreateTable", "UpdateTimeToLive", "DescribeTimeToLive"}


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def test_cfn_lint_is_clean(kit: Kit) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = kit.run([str(cfn_lint), str(TEMPLATE)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_table_matches_the_spec() -> None:
    table = template()["Resources"]["SessionsTable"]
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "chat_id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "chat_id", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["DeletionPolicy"] == "Retain"
    assert template()["Parameters"]["TableName"]["Default"] == "user_sessions"


def dynamodb_calls_in_bot() -> set[str]:
    """The DynamoDB operations the bot's serving code calls: the action named in each `send("GetItem", ...)`
    or `_send(client, table, "GetItem", ...)` (the store's one way to DynamoDB), leaving out `create_table()`,
    which only the `create-table` command runs."""
    calls: set[str] = set()
    for source in BOT_SOURCES.rglob("*.py"):
        text = source.read_text()
        if "dynamodb" not in text.lower():
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name == "create_table":
                continue
            for call in ast.walk(node):
                if not isinstance(call, ast.Call):
                    continue
                name = (
                    call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
                )
                if name not in {"send", "_send"}:
                    continue
                calls.update(
                    arg.value
                    for arg in call.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.isalpha()
                )
    return calls


def bot_statements() -> list[dict[str, Any]]:
    role = template()["Resources"]["BotRole"]["Properties"]
    statements: list[dict[str, Any]] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return statements


def test_bot_role_grants_exactly_what_the_bot_calls_on_the_table_only() -> None:
    statements = bot_statements()
    granted = {action.removeprefix("dynamodb:") for s in statements for action in s["Action"]}
    called = dynamodb_calls_in_bot()
    assert {"GetItem", "PutItem"} <= called, called  # the scan finds the bot's calls
    assert called - LOCAL_ONLY_CALLS <= granted, (
        f"the bot calls {sorted(called - granted)} without permission"
    )
    # Least privilege: what the issue asks for plus what the code calls, nothing else.
    assert granted <= (called - LOCAL_ONLY_CALLS) | {"GetItem", "PutItem", "UpdateItem"}, granted
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] == {"Fn::GetAtt": ["SessionsTable", "Arn"]}
        assert all(action.startswith("dynamodb:") for action in statement["Action"])


def trust(role: str) -> dict[str, Any]:
    document = template()["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Fn::Sub"]
    text = document.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")
    text = text.replace("${OidcProviderUrl}", "oidc.eks.eu-west-1.amazonaws.com/id/ABC")
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_trust_policies_pin_namespace_and_service_account(kit: Kit) -> None:
    parameters = template()["Parameters"]
    eks_values = yaml.safe_load((kit.root / "k8s/overlays/eks/app/values.yaml").read_text())
    for role, account_parameter in (
        ("BotRole", "BotServiceAccount"),
        ("CollectorRole", "CollectorServiceAccount"),
    ):
        statement = trust(role)["Statement"][0]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"].endswith(
            ":oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
        )
        conditions = statement["Condition"]["StringEquals"]
        assert conditions["oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud"] == "sts.amazonaws.com"
        assert conditions["oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub"] == (
            f"system:serviceaccount:${{Namespace}}:${{{account_parameter}}}"
        )
    # The defaults are the names the eks overlay gives the release and the bot's ServiceAccount.
    assert parameters["Namespace"]["Default"] == "mcstatbot"
    assert parameters["BotServiceAccount"]["Default"] == eks_values["serviceAccount"]["name"]
    collector = kit.render("eks", "k8s/overlays/eks/app/values.yaml")
    assert collector.has("ServiceAccount", parameters["CollectorServiceAccount"]["Default"])

"""Glue: the lake's database and table (with partition projection), and the Catalog port."""

from __future__ import annotations

from typing import Any

from fraudctl.aws.session import AwsSession, error_code

_NOT_FOUND = ("EntityNotFoundException",)
# Glue adds these on read; they are not part of what we declare.
_READ_ONLY = {"CreateTime", "UpdateTime", "CreatedBy", "IsRegisteredWithLakeFormation",
              "CatalogId", "VersionId", "DatabaseName", "IsMultiDialectView", "LastAccessTime",
              "Retention", "IsMaterializedView", "Owner", "FederatedTable", "ViewDefinition"}


def database_exists(aws: AwsSession, name: str) -> bool:
    try:
        aws.client("glue").get_database(Name=name)
    except Exception as exc:
        if error_code(exc) in _NOT_FOUND:
            return False
        raise
    return True


def create_database(aws: AwsSession, name: str, stack: str) -> None:
    try:
        aws.client("glue").create_database(
            DatabaseInput={"Name": name, "Description": f"fraudctl lake of stack {stack}"},
            Tags={tag["Key"]: tag["Value"] for tag in aws.tags()},
        )
    except Exception as exc:
        if error_code(exc) != "AlreadyExistsException":
            raise


def delete_database(aws: AwsSession, name: str) -> None:
    try:
        aws.client("glue").delete_database(Name=name)
    except Exception as exc:
        if error_code(exc) not in _NOT_FOUND:
            raise


def get_table(aws: AwsSession, database: str, name: str) -> dict[str, Any] | None:
    try:
        table: dict[str, Any] = aws.client("glue").get_table(DatabaseName=database, Name=name)[
            "Table"
        ]
    except Exception as exc:
        if error_code(exc) in _NOT_FOUND:
            return None
        raise
    return {key: value for key, value in table.items() if key not in _READ_ONLY}


def table_matches(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Compare what we declare: parameters, partition keys, columns, location and formats."""
    if current.get("Parameters", {}) != desired["Parameters"]:
        return False
    if current.get("PartitionKeys") != desired["PartitionKeys"]:
        return False
    have, want = current.get("StorageDescriptor", {}), desired["StorageDescriptor"]
    return all(have.get(key) == want[key] for key in want)


def put_table(aws: AwsSession, database: str, table_input: dict[str, Any], exists: bool) -> None:
    glue = aws.client("glue")
    if exists:
        glue.update_table(DatabaseName=database, TableInput=table_input)
    else:
        glue.create_table(DatabaseName=database, TableInput=table_input)


def delete_table(aws: AwsSession, database: str, name: str) -> None:
    try:
        aws.client("glue").delete_table(DatabaseName=database, Name=name)
    except Exception as exc:
        if error_code(exc) not in _NOT_FOUND:
            raise


class GlueCatalog:
    """The Catalog port over Glue."""

    def __init__(self, aws: AwsSession) -> None:
        self._aws = aws

    def table(self, database: str, name: str) -> dict[str, Any] | None:
        return get_table(self._aws, database, name)

    def put_table(self, database: str, table_input: dict[str, Any]) -> None:
        exists = get_table(self._aws, database, table_input["Name"]) is not None
        put_table(self._aws, database, table_input, exists)

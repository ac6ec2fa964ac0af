"""SQS: the queue and its dead-letter queue (provisioning), and the Queue port's aws adapter."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fraudctl import errors
from fraudctl.aws.session import AwsSession, is_not_found, temporary_as
from fraudctl.ports import QueueDepth, ReceivedMessage

log = logging.getLogger(__name__)
_NOT_FOUND = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
LONG_POLL_S = 20
# Dead letters are evidence: keep them as long as SQS allows (14 days), longer than the
# main queue (4 days), so a message never expires in the DLQ before it could have been seen.
MAIN_RETENTION_S = 4 * 24 * 3600
DLQ_RETENTION_S = 14 * 24 * 3600
_BATCH = 10  # SQS's batch limit for send, receive and delete
_BATCH_BYTES = 256 * 1024  # and for the sum of a send batch's bodies


def queue_url(aws: AwsSession, name: str) -> str | None:
    try:
        url: str = aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    except Exception as exc:
        if is_not_found(exc, *_NOT_FOUND):
            return None
        raise
    return url


def attributes(aws: AwsSession, url: str) -> dict[str, str]:
    found: dict[str, str] = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["All"]
    )["Attributes"]
    return found


def desired_dlq_attributes() -> dict[str, str]:
    return {
        "MessageRetentionPeriod": str(DLQ_RETENTION_S),
        "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_S),
        "SqsManagedSseEnabled": "true",
    }


def desired_queue_attributes(
    dlq_arn: str, max_receive_count: int, visibility_timeout_s: int
) -> dict[str, str]:
    return {
        "MessageRetentionPeriod": str(MAIN_RETENTION_S),
        "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_S),
        "VisibilityTimeout": str(visibility_timeout_s),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count},
            separators=(",", ":"),
        ),
    }


def drift(current: dict[str, str], desired: dict[str, str]) -> list[str]:
    """Names of the attributes that differ from what the stack wants."""
    differing = []
    for key, want in desired.items():
        have = current.get(key)
        if key == "RedrivePolicy" and have is not None:
            if json.loads(have) != json.loads(want):
                differing.append(key)
        elif have != want:
            differing.append(key)
    return differing


def create_queue(aws: AwsSession, name: str, attrs: dict[str, str]) -> dict[str, Any]:
    tags = {tag["Key"]: tag["Value"] for tag in aws.tags()}
    url = aws.client("sqs").create_queue(QueueName=name, Attributes=attrs, tags=tags)["QueueUrl"]
    arn = attributes(aws, url)["QueueArn"]
    return {"url": url, "arn": arn}


def set_attributes(aws: AwsSession, url: str, attrs: dict[str, str]) -> None:
    aws.client("sqs").set_queue_attributes(QueueUrl=url, Attributes=attrs)


def delete_queue(aws: AwsSession, name: str) -> None:
    url = queue_url(aws, name)
    if url is None:
        return
    try:
        aws.client("sqs").delete_queue(QueueUrl=url)
    except Exception as exc:
        if not is_not_found(exc, *_NOT_FOUND):
            raise


class SqsQueue:
    """The Queue port over SQS."""

    def __init__(self, aws: AwsSession, name: str) -> None:
        self.name = name
        self._aws = aws
        url = queue_url(aws, name)
        if url is None:
            raise errors.StackNotFound(f"SQS queue {name} does not exist")
        self.url = url

    def send_batch(self, bodies: Sequence[str]) -> None:
        sqs = self._aws.client("sqs")
        for chunk in _send_chunks(bodies):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            with temporary_as(errors.QueueUnavailable, f"sending to SQS queue {self.name}"):
                result = sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed = result.get("Failed", [])
            if failed:
                first = failed[0]
                raise errors.CloudError(
                    f"SQS refused {len(failed)} of {len(chunk)} messages: "
                    f"{first.get('Code')}: {first.get('Message')}"
                )

    def receive(
        self, max_messages: int, *, wait_s: float, visibility_s: int
    ) -> list[ReceivedMessage]:
        with temporary_as(errors.QueueUnavailable, f"receiving from SQS queue {self.name}"):
            result = self._aws.client("sqs").receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(_BATCH, max_messages)),
                WaitTimeSeconds=max(0, min(LONG_POLL_S, int(wait_s))),
                VisibilityTimeout=visibility_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        return [
            ReceivedMessage(
                body=message["Body"],
                receipt=message["ReceiptHandle"],
                receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for message in result.get("Messages", [])
        ]

    def delete(self, receipts: Sequence[str]) -> None:
        """Delete what the receipts hold. A receipt SQS no longer honours (the message was
        handed out again, or the handle expired) is skipped with a warning: its message comes
        back and is counted as a duplicate, which loses nothing. SQS's own failure of an
        entry is temporary (the caller retries the batch; a repeated delete is harmless)."""
        sqs = self._aws.client("sqs")
        for start in range(0, len(receipts), _BATCH):
            chunk = receipts[start : start + _BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
            with temporary_as(errors.QueueUnavailable, f"deleting from SQS queue {self.name}"):
                result = sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
            failed = result.get("Failed", [])
            theirs = [entry for entry in failed if not entry.get("SenderFault", True)]
            if theirs:
                raise errors.QueueUnavailable(
                    f"SQS could not delete {len(theirs)} of {len(chunk)} messages from "
                    f"{self.name}: {theirs[0].get('Code')}: {theirs[0].get('Message')}")
            if failed:
                log.warning("%d of %d receipts no longer hold their message in %s (%s); "
                            "those messages come back and are counted as duplicates",
                            len(failed), len(chunk), self.name, failed[0].get("Code"))

    def peek(self, limit: int) -> list[ReceivedMessage]:
        """SQS has no peek: receive with a zero visibility timeout, so nothing is hidden."""
        seen: dict[str, ReceivedMessage] = {}
        for _ in range(max(1, limit // _BATCH) * 3):
            result = self._aws.client("sqs").receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=_BATCH, VisibilityTimeout=0,
                WaitTimeSeconds=0, MessageSystemAttributeNames=["ApproximateReceiveCount"])
            messages = result.get("Messages", [])
            if not messages:
                break
            for message in messages:
                seen.setdefault(message["MessageId"], ReceivedMessage(
                    body=message["Body"], receipt=message["ReceiptHandle"],
                    receive_count=int(message.get("Attributes", {}).get(
                        "ApproximateReceiveCount", 1))))
            if len(seen) >= limit:
                break
        return list(seen.values())[:limit]

    def oldest_age_s(self) -> float | None:
        # SQS publishes ApproximateAgeOfOldestMessage to CloudWatch only, not as a queue
        # attribute; the consumers' own lag gauge (age at commit) stands in for it.
        return None

    def depth(self) -> QueueDepth:
        attrs = self._aws.client("sqs").get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return QueueDepth(
            visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )


def _send_chunks(bodies: Sequence[str]) -> list[Sequence[str]]:
    """The bodies in SQS-sized batches: at most 10, whose bodies add up to at most 256 KiB
    (ten large messages, each within the limit, are refused together)."""
    chunks: list[Sequence[str]] = []
    start, size = 0, 0
    for index, body in enumerate(bodies):
        length = len(body.encode())
        if index > start and (index - start == _BATCH or size + length > _BATCH_BYTES):
            chunks.append(bodies[start:index])
            start, size = index, 0
        size += length
    if start < len(bodies):
        chunks.append(bodies[start:])
    return chunks

import json

from fraudctl.aws import sqs


def test_redrive_policy_and_long_polling() -> None:
    attrs = sqs.desired_queue_attributes("arn:aws:sqs:r:1:dlq", 5, 60)
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:r:1:dlq", "maxReceiveCount": 5}
    assert attrs["ReceiveMessageWaitTimeSeconds"] == "20"
    assert attrs["VisibilityTimeout"] == "60"


def test_drift_compares_redrive_policy_as_json() -> None:
    desired = sqs.desired_queue_attributes("arn:dlq", 5, 60)
    current = dict(desired)
    current["RedrivePolicy"] = '{"maxReceiveCount": "5", "deadLetterTargetArn": "arn:dlq"}'
    assert sqs.drift(current, desired) == ["RedrivePolicy"]  # "5" is not 5
    current["RedrivePolicy"] = '{"maxReceiveCount": 5, "deadLetterTargetArn": "arn:dlq"}'
    assert sqs.drift(current, desired) == []
    current["VisibilityTimeout"] = "30"
    assert sqs.drift(current, desired) == ["VisibilityTimeout"]

"""The typed parameters of the deployable flows validate like the UI form promises."""

import uuid

import pytest
from pydantic import ValidationError

from regbatch.flow_params import BatchRun
from regbatch.statuses import ExecutionMode


def test_an_existing_batch_by_id() -> None:
    run = BatchRun(batch_id=uuid.uuid4())
    assert run.execution_mode == "sequential" and run.started_by == "user:prefect"


def test_a_new_batch_needs_organisation_name_and_restaurants() -> None:
    run = BatchRun(
        organisation="Acme Foods",
        name="Q4",
        restaurant_ids=[uuid.uuid4()],
        execution_mode=ExecutionMode.PARALLEL,
        concurrency=5,
    )
    assert run.batch_id is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give batch_id to run an existing batch"),
        ({"batch_id": uuid.uuid4(), "name": "x"}, "not both"),
        ({"organisation": "Acme", "name": "x"}, "give batch_id to run an existing batch"),
        ({"batch_id": uuid.uuid4(), "concurrency": 0}, "greater than or equal to 1"),
        ({"batch_id": uuid.uuid4(), "execution_mode": "turbo"}, "Input should be"),
        ({"batch_id": uuid.uuid4(), "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BatchRun(**fields)

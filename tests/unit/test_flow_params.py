"""The typed parameters of the deployable flows validate like the UI form promises."""

import uuid

import pytest
from pydantic import ValidationError

from regbatch.flow_params import NOTHING_TO_RUN, BatchRun
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
        ({"restaurant_ids": [uuid.uuid4()]}, "give batch_id to run an existing batch"),
        ({"batch_id": uuid.uuid4(), "name": "x"}, "not both"),
        ({"organisation": "Acme", "name": "x"}, "give batch_id to run an existing batch"),
        ({"batch_id": uuid.uuid4(), "concurrency": 0}, "greater than or equal to 1"),
        ({"batch_id": uuid.uuid4(), "concurrency": 4}, "an existing batch runs with those"),
        ({"batch_id": uuid.uuid4(), "settings": {"a": 1}}, "an existing batch runs with those"),
        ({"batch_id": uuid.uuid4(), "execution_mode": "turbo"}, "Input should be"),
        ({"batch_id": uuid.uuid4(), "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BatchRun(**fields)


def test_the_empty_form_is_valid_and_chooses_nothing() -> None:
    """Quick run sends no parameters: the form's defaults validate, and the flow refuses them
    with a message that names the fields to fill in."""
    assert BatchRun().chooses_nothing
    assert not BatchRun(batch_id=uuid.uuid4()).chooses_nothing
    for field in ("Custom run", "run.batch_id", "run.organisation", "run.restaurant_ids"):
        assert field in NOTHING_TO_RUN


def test_the_batch_flow_form_requires_nothing_without_a_default() -> None:
    from regbatch.flows.batch import registration_batch

    schema = registration_batch.parameters.model_dump()
    assert schema["required"] == []
    run_model = schema["definitions"]["BatchRun"]
    assert not run_model.get("required")
    assert all(field.get("description") for field in run_model["properties"].values())
    assert schema["properties"]["run"]["description"]


def test_every_deployable_flow_can_be_started_with_no_parameters() -> None:
    """Quick run sends no parameters: no deployment's form may require one."""
    from prefect.utilities.importtools import import_object

    from regbatch.deployments.catalog import CATALOG

    for item in CATALOG:
        schema = import_object(item.flow).parameters.model_dump()
        assert schema["required"] == [], item.name
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{item.name}: {name} has no description"


def test_the_empty_forms_are_refused_saying_what_to_fill_in() -> None:
    """Without Prefect: each flow's body, given its empty form, ends Failed with the message."""
    import asyncio

    from regbatch.errors import ConfigurationError
    from regbatch.flow_params import NO_TEMPLATE, NOTHING_TO_RETRY
    from regbatch.flows.batch import registration_batch
    from regbatch.flows.restaurant import NO_LEASE, register_restaurant
    from regbatch.flows.retry import retry_failed_batch
    from regbatch.flows.template import template_batch

    for flow, message in (
        (registration_batch, NOTHING_TO_RUN),
        (retry_failed_batch, NOTHING_TO_RETRY),
        (template_batch, NO_TEMPLATE),
    ):
        state = asyncio.run(flow.fn())
        assert state.is_failed() and state.message == message
        assert "Custom run" in message
    with pytest.raises(ConfigurationError, match="needs that runner's lease"):
        asyncio.run(register_restaurant.fn())
    assert "start the batch instead" in NO_LEASE


def test_a_restaurant_runs_arguments_are_taken_in_process_and_from_a_deployment_run() -> None:
    """register-restaurant checks its own two parameters (Prefect's validation is off)."""
    import uuid

    from regbatch.errors import ConfigurationError
    from regbatch.flows.restaurant import run_arguments
    from regbatch.lease import Lease

    job_id, lease = uuid.uuid4(), Lease(batch_id=uuid.uuid4(), owner="host:1:run", token=3)
    assert run_arguments(job_id, lease) == (job_id, lease)
    # a deployment run's parameters are their JSON forms
    assert run_arguments(str(job_id), lease.model_dump(mode="json")) == (job_id, lease)
    with pytest.raises(ConfigurationError, match="job_id 'job-7' is not a job id"):
        run_arguments("job-7", lease)
    with pytest.raises(ConfigurationError, match="lease .* is not a runner's lease"):
        run_arguments(job_id, {"batch_id": str(uuid.uuid4()), "owner": "x", "token": 0})
    with pytest.raises(ConfigurationError, match="needs that runner's lease"):
        run_arguments(job_id, None)

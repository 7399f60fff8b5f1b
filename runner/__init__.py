"""The runner's runtime: what flows and tasks use to act on the world.

* `ledger.py`: the SQL ledger (one transaction per call on a small thread pool, retried while
  the database is briefly away, every write fenced by the runner's lease) and the accessor
  flows and tasks reach it through;
* `lease.py`: the heartbeat that keeps the runner's lease and notices when it is lost;
* `platform.py`: one platform client per event loop;
* `account_turn.py`: the global account-creation queue;
* `prefect_runs.py`: what the runner tells Prefect about flow runs (crashed, cancelled);
* `cancellation.py`: a cancel of a batch's flow run in Prefect cancels the batch;
* `logs.py`, `names.py`: the run logger and the names of flow runs.
"""

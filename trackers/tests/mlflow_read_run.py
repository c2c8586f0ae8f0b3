"""Prints, as JSON, every run of an MLflow experiment as MLflow's own client reads it back.

Usage: python mlflow_read_run.py TRACKING_URI EXPERIMENT_NAME

Output: {"runs": [{"run_id", "name", "status", "params": {key: value},
"metrics": {key: [[step, value], ...]}, "artifacts": [path, ...]}]}, each metric's history
in step order. Used by experiments/tests/mlflow.rs (written against mlflow 3.18.0).
"""

import json
import sys

from mlflow.tracking import MlflowClient


def artifact_paths(client, run_id, path=None):
    """Every file under the run's artifacts, recursively."""
    paths = []
    for entry in client.list_artifacts(run_id, path):
        if entry.is_dir:
            paths.extend(artifact_paths(client, run_id, entry.path))
        else:
            paths.append(entry.path)
    return paths


def main():
    uri, experiment_name = sys.argv[1], sys.argv[2]
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    runs = []
    if experiment is not None:
        for run in client.search_runs([experiment.experiment_id]):
            metrics = {}
            for key in run.data.metrics:
                history = client.get_metric_history(run.info.run_id, key)
                metrics[key] = sorted([m.step, m.value] for m in history)
            runs.append(
                {
                    "run_id": run.info.run_id,
                    "name": run.info.run_name,
                    "status": run.info.status,
                    "params": run.data.params,
                    "metrics": metrics,
                    "artifacts": sorted(artifact_paths(client, run.info.run_id)),
                }
            )
    json.dump({"runs": runs}, sys.stdout)


if __name__ == "__main__":
    main()

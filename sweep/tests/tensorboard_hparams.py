"""Lists a sweep directory's HParams sessions the way TensorBoard's HParams dashboard does:
TensorBoard's own event multiplexer and data provider read the event files, and the hparams
plugin's ListSessionGroups handler (the dashboard's backend) answers for every swept
hyperparameter and metric of the experiment record. Prints one JSON object: the experiment's
hyperparameter and metric names, and per session its name, status, hparams and metric values.

Usage: python tensorboard_hparams.py SWEEP_DIR   (needs the `tensorboard` package; .ci/run
installs tensorboard==2.21.0 into a venv)
"""

import json
import sys

from tensorboard import context
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import backend_context
from tensorboard.plugins.hparams import list_session_groups


def main(logdir):
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    tb_context = base_plugin.TBContext(
        logdir=logdir, multiplexer=multiplexer, data_provider=provider
    )
    backend = backend_context.Context(tb_context)
    request_context = context.RequestContext()
    experiment = backend.experiment_from_metadata(
        request_context, "", True, backend.hparams_metadata(request_context, ""),
        backend.hparams_from_data_provider(request_context, "", limit=None),
    )
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0,
        slice_size=1000,
        allowed_statuses=[
            api_pb2.STATUS_UNKNOWN,
            api_pb2.STATUS_SUCCESS,
            api_pb2.STATUS_FAILURE,
            api_pb2.STATUS_RUNNING,
        ],
    )
    for info in experiment.hparam_infos:
        request.col_params.add(hparam=info.name)
    for info in experiment.metric_infos:
        request.col_params.add(metric=info.name)
    response = list_session_groups.Handler(
        request_context, backend, "", request
    ).run()
    sessions = []
    for group in response.session_groups:
        for session in group.sessions:
            sessions.append(
                {
                    "name": session.name,
                    "status": api_pb2.Status.Name(session.status),
                    "hparams": {
                        name: json.loads(
                            json.dumps(
                                value.number_value
                                if value.HasField("number_value")
                                else value.string_value
                                if value.HasField("string_value")
                                else value.bool_value
                            )
                        )
                        for name, value in group.hparams.items()
                    },
                    "metrics": {
                        f"{m.name.group}/{m.name.tag}": m.value
                        for m in session.metric_values
                    },
                }
            )
    print(
        json.dumps(
            {
                "hparams": [info.name for info in experiment.hparam_infos],
                "metrics": [
                    f"{info.name.group}/{info.name.tag}"
                    for info in experiment.metric_infos
                ],
                "sessions": sorted(sessions, key=lambda s: s["name"]),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])

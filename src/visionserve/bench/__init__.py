"""``visionserve bench`` (``docs/bench.md``): measure a running server (any of its protocols) or a model in-process.

- :mod:`~visionserve.bench.loop`: the closed-loop runner (threads, warm-up, fixed-time window,
  client CPU), shared with the scripts of ``benchmarks/``;
- :mod:`~visionserve.bench.answers`: the comparable :class:`Answer` and the check against the
  single-request reference;
- :mod:`~visionserve.bench.wire`: each protocol's request and the reading of its answer;
- :mod:`~visionserve.bench.http`: bodies built once and sent over one keep-alive connection per thread;
- :mod:`~visionserve.bench.remote`: the references and the workers against a server;
- :mod:`~visionserve.bench.inprocess`: the model with no server (``--model``, ``--model-alone``);
- :mod:`~visionserve.bench.sweep`: the steps in order, the images, the progress display;
- :mod:`~visionserve.bench.report`: the table, JSON and CSV.
"""

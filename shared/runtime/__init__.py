"""The stage runtime: the process skeleton (``process``), what a stage is (``stage``), the two
consume skeletons (``batch`` in order, ``watermark_loop`` out of order, with ``consume`` and
``watermark``), the HTTP port (``httpserver``, ``http``), logs and core metrics."""

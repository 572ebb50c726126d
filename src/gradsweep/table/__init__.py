"""The Markdown results pages built from ``results/<sweep>/runs.parquet`` (see docs/outputs.md).

- :mod:`~gradsweep.table.results`: results.md, one row per config, and :func:`write_results`;
- :mod:`~gradsweep.table.configs`: the per-config table of an experiment;
- :mod:`~gradsweep.table.seeds`: results_seeds.md, one row per run;
- :mod:`~gradsweep.table.claims`: a claim's measured verdict in words;
- :mod:`~gradsweep.table.common`: columns, sections and text the pages share.
"""

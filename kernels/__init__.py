"""Physics data files used by :mod:`dosimetry` (installed as ``dosimetry.kernel_data``).

The files are copies of published data; ``kernels/README.md`` gives the source of each.
Code reads them only through :mod:`dosimetry.io.data_files`.
"""

"""File input/output, one module per format: ``atomic`` (writes that appear complete or not at all, CSV), ``voxels``
(voxel data in NPY, HDF5 or NIfTI), ``maps`` (HDF5 parameter-map files), ``nifti`` (NIfTI with a JSON sidecar) and
``cfl`` (BART)."""

"""The inference contract (no torch): the manifest and the pre/post-processing around a model.

Below ``data``, ``train``, ``export`` and ``serve``, above ``geometry``: everything that feeds a model
or reads its output calls :mod:`heal_swin.inference.processing`; every exported model carries a
:mod:`heal_swin.inference.manifest`; :mod:`heal_swin.inference.triton` is the repository layout.
"""

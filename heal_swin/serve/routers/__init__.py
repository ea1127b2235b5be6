"""The service's routers, one per concern; :func:`heal_swin.serve.app.create_app` includes ``ROUTERS``.

A new router module defines ``router = APIRouter(...)``, reaches the app's state through
``Depends(get_state)`` (:mod:`heal_swin.serve.state`) and is added to ``ROUTERS`` in
:mod:`heal_swin.serve.app` (one line).
"""

"""Administration: reloading the model from its source without a restart."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import State, require_admin_key
from api.errors import ApiError
from api.lifecycle import reload_model
from api.schemas import ErrorResponse, ReloadResponse

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin_key)],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong admin API key"},
        403: {"model": ErrorResponse, "description": "Admin is off (no ADMIN_API_KEY or API_KEY set)"},
        502: {"model": ErrorResponse, "description": "The source's model could not be loaded; the old one serves on"},
    },
)


@router.post("/reload", summary="Load the model MODEL_URI names now and swap it in, in every worker")
async def reload(state: State) -> ReloadResponse:
    outcome = await reload_model(state, force=True, announce=True)
    if not outcome.ok:
        raise ApiError(
            502,
            "reload_failed",
            f"{outcome.error}; still serving version {outcome.version}",
            [{"serving_version": outcome.version}],
        )
    return ReloadResponse(
        ok=outcome.ok, swapped=outcome.swapped, version=outcome.version, previous_version=outcome.previous_version
    )

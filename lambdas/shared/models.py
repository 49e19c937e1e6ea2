"""The base of the store's pydantic models: each is built (its validator and serializer) when it is
first used, not when its module is imported, so a function pays at cold start only for the models its
own invocations use ("defer_build", pydantic's ConfigDict,
https://docs.pydantic.dev/latest/api/config/#pydantic.config.ConfigDict.defer_build)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)

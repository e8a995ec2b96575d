"""The floor of bench/serving_bench.py: the same HTTP stack as `mlops serve` (uvicorn, FastAPI, a pydantic
body) answering /predict with a constant, so `--compare "floor;"` shows what the load generator, the
network stack and the framework cost on this machine before any feature read or model."""

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

app = FastAPI()
ANSWER = {
    "flight_id": "UA-1545-EWR-20130315T0915Z",
    "probability_late": 0.25,
    "decision": "on_time",
    "decision_threshold": 0.3,
    "threshold_source": "model_version_tag",
    "model_version": "1",
}


class Flight(BaseModel):
    carrier: str
    flight_number: int
    origin: str
    dest: str
    scheduled_departure: str


@app.post("/predict")
async def predict(flight: Flight) -> JSONResponse:
    return JSONResponse(ANSWER)


@app.get("/health")
async def health() -> dict:
    return {"status": "ok", "champion_version": "floor", "feature_store": "none"}

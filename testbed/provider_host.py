"""Drive the SDK's real dynamic-provider host (`python -m pulumi.dynamic`) over gRPC, as the engine does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

from rollout.provider import ExperimentProvider
from testbed.promserver import end_process

ROOT = Path(__file__).resolve().parent.parent
URN = "urn:pulumi:test::seldon-rollout::pulumi-python:dynamic/rollout:Experiment::experiment"


def to_struct(props: dict[str, Any]) -> struct_pb2.Struct:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct))


class ProviderHost:
    """One provider-host process (started here, ended by its handle) and a gRPC stub to it."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PULUMI_PROJECT": "seldon-rollout"}
        self.process = subprocess.Popen([sys.executable, "-m", "pulumi.dynamic"], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdout is not None
        port = self.process.stdout.readline().decode().strip()
        if not port.isdigit():
            err = self.process.stderr.read().decode() if self.process.stderr else ""
            raise RuntimeError(f"provider host did not start: {port!r} {err}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.stub.Configure(proto.ConfigureRequest(args=to_struct({}), acceptSecrets=True))
        self.provider_blob = serialize_provider(ExperimentProvider())

    def props(self, **inputs: Any) -> dict[str, Any]:
        return {**inputs, "__provider": self.provider_blob}

    def check(self, news: dict[str, Any], olds: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        reply = self.stub.Check(proto.CheckRequest(urn=URN, olds=to_struct(olds or {}), news=to_struct(self.props(**news))))
        return from_struct(reply.inputs), [(f.property, f.reason) for f in reply.failures]

    def create(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        reply = self.stub.Create(proto.CreateRequest(urn=URN, properties=to_struct(self.props(**inputs))))
        return reply.id, from_struct(reply.properties)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return self.stub.Diff(proto.DiffRequest(id=id_, urn=URN, olds=to_struct(olds), news=to_struct(self.props(**news))))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        reply = self.stub.Update(proto.UpdateRequest(id=id_, urn=URN, olds=to_struct(olds),
                                                     news=to_struct(self.props(**news))))
        return from_struct(reply.properties)

    def close(self) -> None:
        self.channel.close()
        end_process(self.process, grace=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

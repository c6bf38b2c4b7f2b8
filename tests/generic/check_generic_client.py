"""A generic gRPC client that is not ours: Python grpcio, with only the standard health and
reflection stubs (no gridcase code generated), checks a running gridcase as grpcurl would.

Usage: python check_generic_client.py HOST:PORT
Exit 0 when health says SERVING and reflection lists all five gridcase.v1 services.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

EXPECTED = {
    "gridcase.v1.CaseService",
    "gridcase.v1.DirectoryService",
    "gridcase.v1.GatewayService",
    "gridcase.v1.ReportService",
    "gridcase.v1.StatsService",
}


def main(target: str) -> int:
    failed = 0
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
        serving = status == health_pb2.HealthCheckResponse.SERVING
        print(f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
        failed += 0 if serving else 1

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        listed = set()
        for response in reflection.ServerReflectionInfo(iter([request]), timeout=10):
            listed |= {s.name for s in response.list_services_response.service}
        missing = EXPECTED - listed
        print(f"reflection: {len(listed)} services listed; missing: {sorted(missing) or 'none'}")
        failed += 1 if missing else 0

        # An authenticated RPC without a token is refused, not served.
        try:
            channel.unary_unary("/gridcase.v1.DirectoryService/ListCategories")(b"", timeout=10)
            print("unauthenticated call: served (wrong)")
            failed += 1
        except grpc.RpcError as e:
            ok = e.code() == grpc.StatusCode.UNAUTHENTICATED
            print(f"unauthenticated call: {e.code().name}")
            failed += 0 if ok else 1
    print(f"generic-client: {3 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"))

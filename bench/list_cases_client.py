"""Times ListCases pages through the real server with a generic client (grpcio, the message
types read through server reflection). Used by bench/list-cases.sh.

Usage: list_cases_client.py HOST:PORT TOKEN [PAGES]
"""

import statistics
import sys
import time

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main(target: str, token: str, pages: int) -> int:
    channel = grpc.insecure_channel(target)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    request_type = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("gridcase.v1.ListCasesRequest"))
    response_type = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("gridcase.v1.ListCasesResponse"))
    call = channel.unary_unary(
        "/gridcase.v1.CaseService/ListCases",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    metadata = [("authorization", f"Bearer {token}")]
    first, deep, total = [], [], 0
    for round_ in range(10):
        page_token = ""
        for page in range(pages):
            request = request_type()
            request.page.page_size = 50
            request.page.page_token = page_token
            started = time.perf_counter()
            response = call(request, metadata=metadata, timeout=30)
            elapsed = (time.perf_counter() - started) * 1e3
            (first if page == 0 else deep).append(elapsed)
            total += len(response.cases)
            page_token = response.next_page_token
            if not page_token:
                break
    def summary(xs):
        xs = sorted(xs)
        return f"p50={statistics.median(xs):.2f}ms p99={xs[min(len(xs) - 1, int(len(xs) * 0.99))]:.2f}ms max={xs[-1]:.2f}ms n={len(xs)}"
    print(f"list-cases first page: {summary(first)}")
    print(f"list-cases later pages (keyset paging, up to page {pages}): {summary(deep)}")
    print(f"list-cases cases returned: {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 20))

#!/usr/bin/env bash
# AWS Network Load Balancer: enable PROXY protocol v2 on the target group (TCP or TLS-passthrough listener).
set -euo pipefail
TG_ARN=${TG_ARN:?ARN of the target group}

aws elbv2 modify-target-group-attributes \
  --target-group-arn "$TG_ARN" \
  --attributes Key=proxy_protocol_v2.enabled,Value=true

aws elbv2 describe-target-group-attributes --target-group-arn "$TG_ARN" \
  --query "Attributes[?Key=='proxy_protocol_v2.enabled']"

# Notes
# - NLB health checks on the traffic port send a v2 LOCAL header (family INET, CRC32C and NOOP TLVs, no
#   address block): accepted and served with the NLB's own address.
# - The NLB sends the header with the client's first data ("on_first_ack_with_payload"): fine for HTTPS,
#   where the client speaks first.
# - Through PrivateLink the header carries the VPC endpoint ID: decodeTlvs(getProxyInfo(req.socket).header).awsVpceId
# - trustedProxies: the subnets of the NLB (its private IPs), e.g. ['10.0.0.0/16'].

#!/usr/bin/env bash
# AWS Classic ELB in TCP (passthrough) mode: enable PROXY protocol v1 on the backend port, keeping the
# policies already attached to it. Then point the Node server's trustedProxies at the VPC's subnets.
set -euo pipefail
ELB=${ELB:?name of the Classic Load Balancer}
PORT=${PORT:-443}   # the instance (backend) port

# 1. Create the policy (once per load balancer).
aws elb create-load-balancer-policy \
  --load-balancer-name "$ELB" \
  --policy-name EnableProxyProtocol \
  --policy-type-name ProxyProtocolPolicyType \
  --policy-attributes AttributeName=ProxyProtocol,AttributeValue=true

# 2. Attach it to the backend port *together with* the policies already there: the call replaces the list.
existing=$(aws elb describe-load-balancers --load-balancer-names "$ELB" \
  --query "LoadBalancerDescriptions[0].BackendServerDescriptions[?InstancePort==\`$PORT\`].PolicyNames[]" \
  --output text)
# shellcheck disable=SC2086
aws elb set-load-balancer-policies-for-backend-server \
  --load-balancer-name "$ELB" \
  --instance-port "$PORT" \
  --policy-names $existing EnableProxyProtocol

# 3. Check.
aws elb describe-load-balancers --load-balancer-names "$ELB" \
  --query 'LoadBalancerDescriptions[0].BackendServerDescriptions'
# Health checks: a TCP health check only opens and closes the connection (no header, no event). An
# HTTP/HTTPS health check would be refused by a server that requires the header: use TCP:$PORT.

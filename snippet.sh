secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
key_hex=$(printf %s "${secret#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
id=msg_2Kq7; ts=$(date +%s); body='{"event":"opportunity.won","amount":1200}'
sig=$(printf '%s.%s.%s' "$id" "$ts" "$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64)
curl -s /ingest/crm -H "webhook-id: $id" -H "webhook-timestamp: $ts" \
     -H "webhook-signature: v1,$sig" -H 'Content-Type: application/json' --data-binary "$body"
# {"offset":0}          the same request again: {"offset":0,"duplicate":true}

curl -s /ingest/crm -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" -H "Content-Type: application/json" --data-binary "$body"

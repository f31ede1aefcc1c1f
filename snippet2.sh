curl -s '/topics/purchases/records?key=user-7' \
     -H 'Wharf-Header-Source: web' --data-binary 'kettle'       # {"offset":3}
curl -s /healthz                                   # {"status":"ok"}
curl -s /metrics | promtool check metrics          # no complaints


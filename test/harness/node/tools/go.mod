module tsgw.local/node-tools

go 1.22

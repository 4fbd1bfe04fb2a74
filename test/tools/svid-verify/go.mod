module meshtest/tools/svid-verify

go 1.25.5

require github.com/spiffe/go-spiffe/v2 v2.9.0

// Command etcd is the etcd the test kube-apiserver stores its objects in,
// compiled from the pinned go.etcd.io/etcd/server/v3 module. It is upstream's
// etcdmain entry point; all behaviour is etcd's. Built by scripts/provision.ts
// into the git-ignored cache.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

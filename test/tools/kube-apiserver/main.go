// Command kube-apiserver is the Kubernetes API server the mesh's Kubernetes
// side is tested against, compiled from the pinned k8s.io/kubernetes module.
// It is upstream's cmd/kube-apiserver main; all behaviour is Kubernetes'.
// Built by scripts/provision.ts into the git-ignored cache.
package main

import (
	"os"

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}

// Command kubebin is a multi-call binary holding the Kubernetes control plane
// used by Kubetune's tests: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler (and a matching kubectl), all built from the Go module proxy at the versions pinned in
// hack/versions.env.
//
// Usage: kubebin <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|version> [flags...]
// (or a symlink named after the component).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	_ "time/tzdata" // for timeZone support in CronJob

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kubebin <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|version> [flags...]")
	os.Exit(2)
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name == "kubebin" {
		if len(args) == 0 {
			usage()
		}
		name, args = args[0], args[1:]
	}
	// Components parse os.Args themselves: present them as if run directly.
	os.Args = append([]string{name}, args...)

	switch name {
	case "etcd":
		etcdmain.Main(os.Args)
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kubectl":
		logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) // nolint:errcheck
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	case "version":
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, dep := range bi.Deps {
				switch dep.Path {
				case "k8s.io/kubernetes", "go.etcd.io/etcd/server/v3":
					fmt.Printf("%s %s\n", dep.Path, dep.Version)
				}
			}
		}
	default:
		usage()
	}
}

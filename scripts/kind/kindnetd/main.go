// Command kindnetd is a small stand-in for kind's kindnetd, built here because kind's own (a nested module of
// the kind repository) is not published as a Go module. It does the part of kindnetd a kind cluster needs to
// become Ready and its pods to reach what is outside it: on every node it writes the CNI config (ptp +
// host-local for the node's podCIDRs, portmap) and keeps a route to each other node's podCIDRs through that
// node's InternalIP. Traffic from a pod to an address outside its node's pod range is masqueraded to the
// node's address (the ptp plugin's ipMasq), so that pods reach the docker network, the host and beyond;
// kind's kindnetd masquerades only what leaves the cluster's pod range, so here a pod on another node sees
// the node's address instead of the pod's. It enforces no NetworkPolicy (kind's kindnetd does).
//
// It runs as kind's kindnet DaemonSet: hostNetwork, NET_ADMIN, /etc/cni/net.d mounted, HOST_IP set.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const cniConfigPath = "/etc/cni/net.d/10-kindnet.conflist"

func internalIP(n *corev1.Node) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
				return ip
			}
		}
	}
	return nil
}

func podCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

// cniConfig is the conflist for this node's pod ranges (IPv4 only, as kind's default cluster).
func cniConfig(cidrs []string) ([]byte, error) {
	var ranges [][]map[string]string
	for _, c := range cidrs {
		if _, n, err := net.ParseCIDR(c); err == nil && n.IP.To4() != nil {
			ranges = append(ranges, []map[string]string{{"subnet": c}})
		}
	}
	if len(ranges) == 0 {
		return nil, fmt.Errorf("no IPv4 podCIDR in %v", cidrs)
	}
	conf := map[string]any{
		"cniVersion": "0.3.1",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": true,
				"mtu":    1500,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state",
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"ranges":  ranges,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// writeIfChanged writes data to path through a temporary file in the same folder.
func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

func sync(ctx context.Context, client kubernetes.Interface, hostIP net.IP) error {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		ip := internalIP(n)
		cidrs := podCIDRs(n)
		if ip == nil || len(cidrs) == 0 {
			continue
		}
		if ip.Equal(hostIP) {
			data, err := cniConfig(cidrs)
			if err != nil {
				return err
			}
			if changed, err := writeIfChanged(cniConfigPath, data); err != nil {
				return err
			} else if changed {
				log.Printf("wrote %s for %s %v", cniConfigPath, n.Name, cidrs)
			}
			continue
		}
		for _, c := range cidrs {
			_, dst, err := net.ParseCIDR(c)
			if err != nil || dst.IP.To4() == nil {
				continue
			}
			if err := netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: ip}); err != nil {
				return fmt.Errorf("route %s via %s (%s): %w", dst, ip, n.Name, err)
			}
		}
	}
	return nil
}

func main() {
	hostIP := net.ParseIP(os.Getenv("HOST_IP"))
	if hostIP == nil {
		log.Fatalf("HOST_IP %q is not an IP address", os.Getenv("HOST_IP"))
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("kindnetd (mcstatbot stand-in) on %s", hostIP)
	ctx := context.Background()
	for {
		if err := sync(ctx, client, hostIP); err != nil {
			log.Printf("sync: %v", err)
		}
		time.Sleep(10 * time.Second)
	}
}

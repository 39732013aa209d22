"""The Kubernetes dev cluster (`make k8s`, issue 21): one node of plain processes built from the
pinned Go modules (devstack.build.kubernetes), certificates from a local CA (pki), the config
files they read (files), the images made here (images), CoreDNS on the cluster (addons), and the
Cluster that starts and supervises them (cluster)."""

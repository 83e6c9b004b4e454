"""A real Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager.

Used by the test suite, the demo and `syncjob-devtools cluster`. Binaries come from PATH
(hack/bootstrap.sh builds and caches them). Each instance gets free ports, its own temp dir,
its own CA and certificates, and an admin kubeconfig; `stop()` leaves no process behind, and
the children are tied to this process with PR_SET_PDEATHSIG so that even a SIGKILLed test
runner does not leak them. Split as controller-runtime's envtest is: certificates,
kubeconfigs, processes, and the plane that puts them together.
"""

from syncjob_devtools.localcluster.kubeconfigs import kubeconfig_document
from syncjob_devtools.localcluster.plane import ControlPlane, ControlPlaneError
from syncjob_devtools.localcluster.processes import die_with_parent, free_port

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "die_with_parent",
    "free_port",
    "kubeconfig_document",
]

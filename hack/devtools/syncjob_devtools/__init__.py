"""Local tooling for syncjob-operator: a loopback control plane (`localcluster`), emulators of
AWS IoT TwinMaker and Truto (`emulators`), the operator as a child process (`localrun`) and the
end-to-end demo (`demo`). A distribution of its own: the operator's image does not carry it,
and users' CI can install it to emulate both providers."""

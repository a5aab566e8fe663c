ASG(DEFAULT) {
    RULE(1, READ)
    RULE(1, WRITE)
}
ASG($(G)) {
    RULE(1, READ)
}

/*
 * kvmesh_export (test helper): a llama2.c checkpoint as a Hugging Face directory or a
 * GGUF file. Exit 0 ok, 1 failure, 2 usage.
 *   kvmesh_export hf   CKPT TOK DIR  [--dtype f32|f16|bf16] [--shards N] [--omit T] [--arch A] [--rope-theta X]
 *   kvmesh_export gguf CKPT TOK FILE [--dtype f32|f16|q8_0] [--omit T] [--arch A] [--rope-theta X]
 * CKPT "random:SHAPE" (TOK ignored) exports random weights of a kvmesh-convert --random
 * shape instead, for small fuzzing seeds.
 */
#include <stdlib.h>
#include <string.h>

#include "export.h"

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[1], "hf") && strcmp(argv[1], "gguf"))) {
        fprintf(stderr, "usage: kvmesh_export hf|gguf CKPT TOKENIZER OUT [--dtype T] [--shards N] [--omit NAME] "
                "[--arch NAME] [--rope-theta X]\n");
        return 2;
    }
    kx_opts o = { 0 };
    for (int i = 5; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "kvmesh_export: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--dtype"))
            o.dtype = argv[++i];
        else if (!strcmp(argv[i], "--shards"))
            o.shards = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--omit"))
            o.omit = argv[++i];
        else if (!strcmp(argv[i], "--arch"))
            o.arch = argv[++i];
        else if (!strcmp(argv[i], "--rope-theta"))
            o.rope_theta = atof(argv[++i]);
        else {
            fprintf(stderr, "kvmesh_export: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    kt_source src;
    int rnd = strncmp(argv[2], "random:", 7) == 0;
    if (rnd ? kt_open_random(&src, argv[2] + 7, 1) : kt_open_llama2c(&src, argv[2], argv[3])) {
        fprintf(stderr, "kvmesh_export: %s\n", src.err);
        return 1;
    }
    char err[512];
    int rc = !strcmp(argv[1], "hf") ? kx_export_hf(&src, argv[4], &o, err, sizeof err)
                                    : kx_export_gguf(&src, argv[4], &o, err, sizeof err);
    if (rc)
        fprintf(stderr, "kvmesh_export: %s\n", err);
    src.close(&src);
    return rc ? 1 : 0;
}

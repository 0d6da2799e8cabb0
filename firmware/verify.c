/*
 * kvmesh verify: recompute an image's sha256 fingerprint, load its model views, and
 * print its identity. The check to run after copying an image to a board.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "nn.h"

int fw_cmd_verify(int argc, char **argv)
{
    const char *prog = "kvmesh verify", *path = NULL;
    static const struct option opts[] = { { "model", required_argument, 0, 'm' }, { "help", no_argument, 0, 'h' },
                                           { 0, 0, 0, 0 } };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        if (c == 'm') {
            path = optarg;
        } else if (c == 'h') {
            printf("usage: kvmesh verify -m IMAGE\n\nRecomputes the image fingerprint (reads every byte),\n"
                   "checks every tensor, and prints the model identity. Exit 0 when valid, 1 otherwise.\n");
            return 0;
        } else {
            return 2;
        }
    }
    if (!path || optind != argc) {
        fprintf(stderr, "%s: -m IMAGE is required\n", prog);
        return 2;
    }
    nn_image img;
    static nn_model m;
    nn_status st = nn_image_open(&img, path);
    if (!st)
        st = nn_image_verify(&img);
    if (!st)
        st = nn_model_init(&m, &img);
    if (st) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, nn_strerror(st));
        nn_image_close(&img);
        return 1;
    }
    const nn_config *g = &img.cfg;
    printf("%s: ok\nfingerprint: ", path);
    for (int i = 0; i < 32; i++)
        printf("%02x", img.id.fingerprint[i]);
    printf("\nnumerics: %u\nshape: dim %u hidden %u layers %u heads %u kv_heads %u head_dim %u vocab %u max_seq %u "
           "group %u%s\n", img.id.numerics_version, g->dim, g->hidden_dim, g->n_layers, g->n_heads, g->n_kv_heads,
           g->head_dim, g->vocab_size, g->max_seq, g->group_size,
           g->flags & NN_IMG_FLAG_TIED_CLASSIFIER ? " tied" : "");
    nn_image_close(&img);
    return 0;
}

"""PyTorch reference networks, written from ../shared/spec/methods.md section 1.1 (the SSL4MIS 2D U-Net
and the UA-MT / BCP 3D V-Net). Parameter names equal the published module trees, so state dicts move
between these modules, the published code and semiseg."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock2d(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        self.conv_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(),
            nn.Dropout(p), nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU())

    def forward(self, x):
        return self.conv_conv(x)


class DownBlock2d(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), ConvBlock2d(cin, cout, p))

    def forward(self, x):
        return self.maxpool_conv(x)


class UpBlock2d(nn.Module):
    def __init__(self, c1, c2, cout, p=0.0):
        super().__init__()
        self.conv1x1 = nn.Conv2d(c1, c2, 1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = ConvBlock2d(c2 * 2, cout, p)

    def forward(self, x1, x2):
        x1 = self.up(self.conv1x1(x1))
        return self.conv(torch.cat([x2, x1], dim=1))


class Encoder2d(nn.Module):
    def __init__(self, cin, ft, dropout):
        super().__init__()
        self.in_conv = ConvBlock2d(cin, ft[0], dropout[0])
        self.down1 = DownBlock2d(ft[0], ft[1], dropout[1])
        self.down2 = DownBlock2d(ft[1], ft[2], dropout[2])
        self.down3 = DownBlock2d(ft[2], ft[3], dropout[3])
        self.down4 = DownBlock2d(ft[3], ft[4], dropout[4])

    def forward(self, x):
        x0 = self.in_conv(x)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        return [x0, x1, x2, x3, self.down4(x3)]


class Decoder2d(nn.Module):
    def __init__(self, ft, n_class):
        super().__init__()
        self.up1 = UpBlock2d(ft[4], ft[3], ft[3])
        self.up2 = UpBlock2d(ft[3], ft[2], ft[2])
        self.up3 = UpBlock2d(ft[2], ft[1], ft[1])
        self.up4 = UpBlock2d(ft[1], ft[0], ft[0])
        self.out_conv = nn.Conv2d(ft[0], n_class, 3, padding=1)

    def forward(self, f):
        x = self.up1(f[4], f[3])
        x = self.up2(x, f[2])
        x = self.up3(x, f[1])
        x = self.up4(x, f[0])
        return self.out_conv(x)


class UNet2D(nn.Module):
    def __init__(self, in_channels=1, out_channels=4, features=(16, 32, 64, 128, 256),
                 dropout=(0.05, 0.1, 0.2, 0.3, 0.5)):
        super().__init__()
        self.encoder = Encoder2d(in_channels, list(features), list(dropout))
        self.decoder = Decoder2d(list(features), out_channels)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def _norm3d(kind, c):
    if kind == "batchnorm":
        return [nn.BatchNorm3d(c)]
    if kind == "instancenorm":
        return [nn.InstanceNorm3d(c)]
    if kind == "groupnorm":
        return [nn.GroupNorm(16, c)]
    return []


class ConvBlock3d(nn.Module):
    def __init__(self, n, cin, cout, norm):
        super().__init__()
        ops = []
        for i in range(n):
            ops += [nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1)] + _norm3d(norm, cout) + [nn.ReLU(inplace=True)]
        self.conv = nn.Sequential(*ops)

    def forward(self, x):
        return self.conv(x)


class Resample3d(nn.Module):
    def __init__(self, cin, cout, norm, up):
        super().__init__()
        conv = nn.ConvTranspose3d(cin, cout, 2, stride=2) if up else nn.Conv3d(cin, cout, 2, stride=2)
        self.conv = nn.Sequential(conv, *_norm3d(norm, cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv(x)


class VNet3D(nn.Module):
    def __init__(self, in_channels=1, out_channels=2, n_filters=16, normalization="batchnorm", has_dropout=True):
        super().__init__()
        f, n = n_filters, normalization
        self.has_dropout = has_dropout
        self.block_one = ConvBlock3d(1, in_channels, f, n)
        self.block_one_dw = Resample3d(f, 2 * f, n, False)
        self.block_two = ConvBlock3d(2, 2 * f, 2 * f, n)
        self.block_two_dw = Resample3d(2 * f, 4 * f, n, False)
        self.block_three = ConvBlock3d(3, 4 * f, 4 * f, n)
        self.block_three_dw = Resample3d(4 * f, 8 * f, n, False)
        self.block_four = ConvBlock3d(3, 8 * f, 8 * f, n)
        self.block_four_dw = Resample3d(8 * f, 16 * f, n, False)
        self.block_five = ConvBlock3d(3, 16 * f, 16 * f, n)
        self.block_five_up = Resample3d(16 * f, 8 * f, n, True)
        self.block_six = ConvBlock3d(3, 8 * f, 8 * f, n)
        self.block_six_up = Resample3d(8 * f, 4 * f, n, True)
        self.block_seven = ConvBlock3d(3, 4 * f, 4 * f, n)
        self.block_seven_up = Resample3d(4 * f, 2 * f, n, True)
        self.block_eight = ConvBlock3d(2, 2 * f, 2 * f, n)
        self.block_eight_up = Resample3d(2 * f, f, n, True)
        self.block_nine = ConvBlock3d(1, f, f, n)
        self.out_conv = nn.Conv3d(f, out_channels, 1, padding=0)
        self.dropout = nn.Dropout3d(p=0.5, inplace=False)

    def forward(self, x):
        x1 = self.block_one(x)
        x2 = self.block_two(self.block_one_dw(x1))
        x3 = self.block_three(self.block_two_dw(x2))
        x4 = self.block_four(self.block_three_dw(x3))
        x5 = self.block_five(self.block_four_dw(x4))
        if self.has_dropout:
            x5 = self.dropout(x5)
        x6 = self.block_six(self.block_five_up(x5) + x4)
        x7 = self.block_seven(self.block_six_up(x6) + x3)
        x8 = self.block_eight(self.block_seven_up(x7) + x2)
        x9 = self.block_nine(self.block_eight_up(x8) + x1)
        if self.has_dropout:
            x9 = self.dropout(x9)
        return self.out_conv(x9)


def build(kind, **kw):
    return {"unet2d": UNet2D, "vnet3d": VNet3D}[kind](**kw)


if __name__ == "__main__":
    for kind in ("unet2d", "vnet3d"):
        m = build(kind)
        print(kind, sum(p.numel() for p in m.parameters()), len(m.state_dict()))
